//! Detach keys (`--detach-keys`, `detachKeys=`): the key sequence that ends an attach or exec session on a
//! TTY without stopping the container or the process (Ctrl-P Ctrl-Q unless told otherwise).

/// Ctrl-P Ctrl-Q.
pub const DEFAULT_KEYS: [u8; 2] = [16, 17];

/// Parses a key sequence as Docker writes it: comma-separated single characters, `ctrl-a` … `ctrl-z`,
/// `ctrl-@`, `ctrl-[`, `ctrl-\`, `ctrl-]`, `ctrl-^`, `ctrl-_`, or `DEL`.
pub fn parse_keys(spec: &str) -> Result<Vec<u8>, String> {
    let mut codes = Vec::new();
    for key in spec.split(',') {
        if key.len() == 1 {
            codes.push(key.as_bytes()[0]);
            continue;
        }
        let ctrl = key.strip_prefix("ctrl-").filter(|k| k.len() == 1);
        let code = match ctrl.map(|k| k.as_bytes()[0]) {
            Some(c @ b'a'..=b'z') => c - b'a' + 1,
            Some(b'@') => 0,
            Some(c @ (b'[' | b'\\' | b']' | b'^' | b'_')) => c - b'@',
            _ if key == "DEL" => 127,
            _ => return Err(format!("Unknown character: '{key}'")),
        };
        codes.push(code);
    }
    Ok(codes)
}

/// Watches a client's input for the sequence. Bytes that might start it are held back until they are known
/// not to (then they are passed on), so the sequence itself never reaches the process.
#[derive(Debug, Clone)]
pub struct EscapeProxy {
    keys: Vec<u8>,
    matched: usize,
}

impl EscapeProxy {
    /// A proxy for `keys` (empty: the default sequence).
    pub fn new(keys: &[u8]) -> EscapeProxy {
        EscapeProxy {
            keys: if keys.is_empty() {
                DEFAULT_KEYS.to_vec()
            } else {
                keys.to_vec()
            },
            matched: 0,
        }
    }

    /// Feeds input; returns what to pass on and whether the sequence was typed (the input after it is
    /// dropped: the session ends there).
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            if self.matched > 0 {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    continue;
                }
            }
            out.push(b);
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_docker_writes_them() {
        assert_eq!(parse_keys("ctrl-p,ctrl-q").unwrap(), DEFAULT_KEYS);
        assert_eq!(
            parse_keys("ctrl-x,a,ctrl-@,ctrl-_").unwrap(),
            [24, b'a', 0, 31]
        );
        assert_eq!(parse_keys("DEL").unwrap(), [127]);
        assert_eq!(
            parse_keys("ctrl-p,nope").unwrap_err(),
            "Unknown character: 'nope'"
        );
    }

    #[test]
    fn the_sequence_is_found_across_reads_and_false_starts_pass_through() {
        let mut p = EscapeProxy::new(&[]);
        assert_eq!(p.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(p.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(p.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(p.feed(b"\x11rest"), (Vec::new(), true));
        let mut p = EscapeProxy::new(b"xy");
        assert_eq!(p.feed(b"1xy2"), (b"1".to_vec(), true));
    }
}
