//! JSON encoding with Go's map ordering. dockerd's encoder (Go's `encoding/json`) writes map keys sorted
//! while struct fields keep their declared order; the bollard models use `HashMap`, whose order is random
//! per process. Clients print our raw JSON (`docker inspect`), so output must be stable and match Docker:
//! [`Sorted`] wraps any value and sorts the keys of every map inside it, leaving struct fields alone.
//!
//! Written here because no maintained crate does "sort maps, keep structs" as a serializer adapter.

use serde::ser::{self, Serialize, SerializeMap, Serializer};

/// Serialises `T` with every map's keys in sorted order.
pub struct Sorted<'a, T: ?Sized>(pub &'a T);

impl<T: Serialize + ?Sized> Serialize for Sorted<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Adapter(s))
    }
}

/// Encodes `value` as JSON bytes with sorted maps.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Sorted(value))
}

struct Adapter<S>(S);

/// Wraps a compound serializer so its elements are serialised through [`Sorted`] too.
struct Compound<C>(C);

/// Buffers a map's entries, then writes them sorted by their JSON key.
struct MapBuffer<M> {
    inner: M,
    entries: Vec<(String, serde_json::Value)>,
    key: Option<String>,
}

fn to_json_value<T: Serialize + ?Sized, E: ser::Error>(v: &T) -> Result<serde_json::Value, E> {
    serde_json::to_value(Sorted(v)).map_err(E::custom)
}

fn key_string<T: Serialize + ?Sized, E: ser::Error>(k: &T) -> Result<String, E> {
    match to_json_value::<T, E>(k)? {
        serde_json::Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

macro_rules! forward {
    ($($m:ident($($a:ident: $t:ty),*);)*) => {
        $(fn $m(self, $($a: $t),*) -> Result<S::Ok, S::Error> { self.0.$m($($a),*) })*
    };
}

impl<S: Serializer> Serializer for Adapter<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
    type SerializeMap = MapBuffer<S::SerializeMap>;
    type SerializeStruct = Compound<S::SerializeStruct>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool); serialize_i8(v: i8); serialize_i16(v: i16); serialize_i32(v: i32);
        serialize_i64(v: i64); serialize_u8(v: u8); serialize_u16(v: u16); serialize_u32(v: u32);
        serialize_u64(v: u64); serialize_f32(v: f32); serialize_f64(v: f64); serialize_char(v: char);
        serialize_str(v: &str); serialize_bytes(v: &[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(n: &'static str);
        serialize_unit_variant(n: &'static str, i: u32, v: &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Sorted(v))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        n: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(n, &Sorted(v))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        n: &'static str,
        i: u32,
        var: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_variant(n, i, var, &Sorted(v))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Compound)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Compound)
    }
    fn serialize_tuple_struct(
        self,
        n: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(n, len).map(Compound)
    }
    fn serialize_tuple_variant(
        self,
        n: &'static str,
        i: u32,
        v: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0.serialize_tuple_variant(n, i, v, len).map(Compound)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Ok(MapBuffer {
            inner: self.0.serialize_map(len)?,
            entries: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }
    fn serialize_struct(
        self,
        n: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(n, len).map(Compound)
    }
    fn serialize_struct_variant(
        self,
        n: &'static str,
        i: u32,
        v: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0.serialize_struct_variant(n, i, v, len).map(Compound)
    }
}

macro_rules! compound {
    ($trait:ident, $elem:ident) => {
        impl<C: ser::$trait> ser::$trait for Compound<C> {
            type Ok = C::Ok;
            type Error = C::Error;
            fn $elem<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
                self.0.$elem(&Sorted(v))
            }
            fn end(self) -> Result<C::Ok, C::Error> {
                self.0.end()
            }
        }
    };
    ($trait:ident, $elem:ident, keyed) => {
        impl<C: ser::$trait> ser::$trait for Compound<C> {
            type Ok = C::Ok;
            type Error = C::Error;
            fn $elem<T: Serialize + ?Sized>(
                &mut self,
                k: &'static str,
                v: &T,
            ) -> Result<(), C::Error> {
                self.0.$elem(k, &Sorted(v))
            }
            fn end(self) -> Result<C::Ok, C::Error> {
                self.0.end()
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);
compound!(SerializeStruct, serialize_field, keyed);
compound!(SerializeStructVariant, serialize_field, keyed);

impl<M: SerializeMap> SerializeMap for MapBuffer<M> {
    type Ok = M::Ok;
    type Error = M::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), M::Error> {
        self.key = Some(key_string::<T, M::Error>(k)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), M::Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| <M::Error as ser::Error>::custom("map value without a key"))?;
        self.entries.push((key, to_json_value::<T, M::Error>(v)?));
        Ok(())
    }

    fn end(mut self) -> Result<M::Ok, M::Error> {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in &self.entries {
            self.inner.serialize_entry(k, v)?;
        }
        self.inner.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(serde::Serialize)]
    struct Outer {
        #[serde(rename = "Zeta")]
        zeta: u8,
        #[serde(rename = "Alpha")]
        alpha: HashMap<String, Inner>,
    }

    #[derive(serde::Serialize)]
    struct Inner {
        z: u8,
        a: Option<HashMap<String, u8>>,
    }

    #[test]
    fn maps_are_sorted_and_struct_fields_keep_their_order() {
        let mut alpha = HashMap::new();
        for k in ["m", "b", "x", "a", "q"] {
            let inner_map = [("k2", 2u8), ("k1", 1), ("k3", 3)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            alpha.insert(
                k.to_owned(),
                Inner {
                    z: 1,
                    a: Some(inner_map),
                },
            );
        }
        let json = String::from_utf8(to_vec(&Outer { zeta: 0, alpha }).unwrap()).unwrap();
        let inner = r#"{"z":1,"a":{"k1":1,"k2":2,"k3":3}}"#;
        let want = format!(
            r#"{{"Zeta":0,"Alpha":{{"a":{inner},"b":{inner},"m":{inner},"q":{inner},"x":{inner}}}}}"#
        );
        assert_eq!(json, want);
    }
}
