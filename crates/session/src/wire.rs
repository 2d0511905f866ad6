//! The protocol-buffers wire format, as far as the session's few messages need it.
//!
//! Written here rather than with `prost`: the session speaks six small messages (a file's stat, a
//! transfer packet, a secret request and answer, the progress records), and a code generator with its
//! proc-macro and build script would cost more build time than these hundred lines.

use bytes::{Buf, Bytes};

/// A message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed protobuf message: {0}")]
pub struct DecodeError(pub &'static str);

/// Appends messages' fields.
#[derive(Default, Debug)]
pub struct Encoder {
    buf: Vec<u8>,
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

impl Encoder {
    /// An empty message.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// A varint field (uint32, int64, bool, enum). Zero is proto3's default and is left out.
    pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        if v != 0 {
            varint(&mut self.buf, u64::from(field) << 3);
            varint(&mut self.buf, v);
        }
        self
    }

    /// A length-delimited field (string, bytes, embedded message), written even when empty.
    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        varint(&mut self.buf, (u64::from(field) << 3) | 2);
        varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// A string or bytes field, left out when empty (proto3's default).
    pub fn string(&mut self, field: u32, v: &str) -> &mut Self {
        if !v.is_empty() {
            self.bytes(field, v.as_bytes());
        }
        self
    }

    /// The encoded message.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// One field of a decoded message.
#[derive(Debug)]
pub enum Value {
    /// A varint (or a fixed-width number, as its bits).
    Int(u64),
    /// A length-delimited field.
    Bytes(Bytes),
}

impl Value {
    /// The number, 0 for a length-delimited field.
    pub fn int(&self) -> u64 {
        match self {
            Value::Int(v) => *v,
            Value::Bytes(_) => 0,
        }
    }

    /// The bytes, empty for a number.
    pub fn bytes(&self) -> Bytes {
        match self {
            Value::Bytes(b) => b.clone(),
            Value::Int(_) => Bytes::new(),
        }
    }

    /// The bytes as text (lossy: paths on the wire are UTF-8).
    pub fn string(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

fn read_varint(b: &mut Bytes) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if !b.has_remaining() {
            return Err(DecodeError("truncated varint"));
        }
        let byte = b.get_u8();
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError("varint longer than 10 bytes"))
}

/// The fields of `msg` in order, as (field number, value).
pub fn fields(mut msg: Bytes) -> Result<Vec<(u32, Value)>, DecodeError> {
    let mut out = Vec::new();
    while msg.has_remaining() {
        let key = read_varint(&mut msg)?;
        let field = (key >> 3) as u32;
        let value = match key & 7 {
            0 => Value::Int(read_varint(&mut msg)?),
            1 => {
                if msg.remaining() < 8 {
                    return Err(DecodeError("truncated fixed64"));
                }
                Value::Int(msg.get_u64_le())
            }
            2 => {
                let n = read_varint(&mut msg)? as usize;
                if msg.remaining() < n {
                    return Err(DecodeError("truncated length-delimited field"));
                }
                Value::Bytes(msg.split_to(n))
            }
            5 => {
                if msg.remaining() < 4 {
                    return Err(DecodeError("truncated fixed32"));
                }
                Value::Int(u64::from(msg.get_u32_le()))
            }
            _ => return Err(DecodeError("unknown wire type")),
        };
        out.push((field, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_defaults_are_left_out() {
        let inner = Encoder::new().string(1, "a/b").uint(2, 0o755).finish();
        let msg = Encoder::new()
            .uint(1, 0)
            .bytes(2, &inner)
            .uint(3, 300)
            .string(4, "")
            .finish();
        // Field 1 (zero) and 4 (empty) are not on the wire.
        let f = fields(Bytes::from(msg)).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].0, f[1].0, f[1].1.int()), (2, 3, 300));
        let g = fields(f[0].1.bytes()).unwrap();
        assert_eq!((g[0].1.string().as_str(), g[1].1.int()), ("a/b", 0o755));
        // 300 is two varint bytes: 0xac 0x02.
        assert_eq!(Encoder::new().uint(3, 300).finish(), vec![0x18, 0xac, 0x02]);
    }

    #[test]
    fn truncated_input_is_an_error() {
        for bad in [&[0x18u8][..], &[0x12, 0x05, 0x61], &[0x18, 0xff]] {
            assert!(fields(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
    }
}
