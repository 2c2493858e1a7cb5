//! Encoder of the binary format (see the module above for the layout).

use super::{Error, BYTES, FALSE, FLOAT, MAP, NAME, NAME_REF, NINT, NULL, SEQ, STR, TRUE, UINT};
use serde::ser::{self, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Append the encoding of `value` to `out`.
pub fn to_writer<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    let mut ser = Serializer {
        out: std::mem::take(out),
        names: HashMap::default(),
    };
    let result = value.serialize(&mut ser);
    *out = ser.out;
    result
}

struct Serializer {
    out: Vec<u8>,
    /// Names already written, by the address and length of their `&'static str`:
    /// a name that exists twice in the binary is only written twice, still valid.
    names: HashMap<(usize, usize), u64, BuildHasherDefault<AddressHasher>>,
}

/// Hashes the (address, length) keys of `Serializer::names`: two multiplications
/// instead of SipHash for every field written.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }
    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl Serializer {
    fn bytes(&mut self, tag: u8, bytes: &[u8]) {
        self.out.push(tag);
        varint(&mut self.out, bytes.len() as u64);
        self.out.extend_from_slice(bytes);
    }

    /// A field or variant name: in full the first time, then by index.
    fn name(&mut self, name: &'static str) {
        let key = (name.as_ptr() as usize, name.len());
        let next = self.names.len() as u64;
        match self.names.get(&key) {
            Some(&index) => {
                self.out.push(NAME_REF);
                varint(&mut self.out, index);
            }
            None => {
                self.names.insert(key, next);
                self.bytes(NAME, name.as_bytes());
            }
        }
    }

    /// Open a sequence or map. Its count is written now when announced, else
    /// inserted when it closes (serde's derives always announce it).
    fn open(&mut self, tag: u8, len: Option<usize>) -> Compound<'_> {
        self.out.push(tag);
        if let Some(len) = len {
            varint(&mut self.out, len as u64);
        }
        let start = self.out.len();
        Compound {
            ser: self,
            announced: len,
            start,
            count: 0,
        }
    }
}

/// An open sequence, map, struct or tuple.
struct Compound<'a> {
    ser: &'a mut Serializer,
    announced: Option<usize>,
    /// Where the first element starts (after the count, when announced).
    start: usize,
    count: usize,
}

impl Compound<'_> {
    fn close(self) -> Result<(), Error> {
        match self.announced {
            Some(len) if len == self.count => Ok(()),
            Some(len) => Err(Error(format!(
                "announced {len} elements, wrote {}",
                self.count
            ))),
            None => {
                let mut count = Vec::with_capacity(10);
                varint(&mut count, self.count as u64);
                self.ser.out.splice(self.start..self.start, count);
                Ok(())
            }
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.count += 1;
        value.serialize(&mut *self.ser)
    }
}

impl<'a> ser::Serializer for &'a mut Serializer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Variant<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Variant<'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push(if v { TRUE } else { FALSE });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        if v >= 0 {
            return self.serialize_u64(v as u64);
        }
        self.out.push(NINT);
        // Zigzag of a negative number: -1 → 1, -2 → 3, …
        varint(&mut self.out, ((v << 1) ^ (v >> 63)) as u64);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.out.push(UINT);
        varint(&mut self.out, v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.out.push(FLOAT);
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.bytes(STR, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.bytes(BYTES, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(NULL);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push(NULL);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.name(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(MAP);
        varint(&mut self.out, 1);
        self.name(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(self.open(SEQ, len))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        Ok(self.open(SEQ, Some(len)))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        Ok(self.open(SEQ, Some(len)))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<'a>, Error> {
        self.out.push(MAP);
        varint(&mut self.out, 1);
        self.name(variant);
        Ok(Variant(self.open(SEQ, Some(len))))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(self.open(MAP, len))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a>, Error> {
        Ok(self.open(MAP, Some(len)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<'a>, Error> {
        self.out.push(MAP);
        varint(&mut self.out, 1);
        self.name(variant);
        Ok(Variant(self.open(MAP, Some(len))))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        // A map entry counts once, at its key.
        self.element(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.count += 1;
        self.ser.name(key);
        value.serialize(&mut *self.ser)
    }
    fn skip_field(&mut self, _key: &'static str) -> Result<(), Error> {
        // Left out, so the announced count (which serde's derive lowers for every
        // skipped field) does not count it either.
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// The content of a tuple or struct variant, inside its one-entry map.
struct Variant<'a>(Compound<'a>);

impl ser::SerializeTupleVariant for Variant<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.0.close()
    }
}

impl ser::SerializeStructVariant for Variant<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(&mut self.0, key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.0.close()
    }
}
