//! Decoder of the binary format: bounds-checked, allocation-free except for what
//! the visitor builds, with nesting limited to `MAX_DEPTH`.

use super::{
    Error, BYTES, FALSE, FLOAT, MAP, MAX_DEPTH, NAME, NAME_REF, NINT, NULL, SEQ, STR, TRUE, UINT,
};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;

/// Decode one value that must use all of `input`.
pub fn from_slice<'de, T: Deserialize<'de>>(input: &'de [u8]) -> Result<T, Error> {
    let mut de = Deserializer {
        input,
        depth: 0,
        names: Vec::new(),
    };
    let value = T::deserialize(&mut de)?;
    if !de.input.is_empty() {
        return Err(Error(format!("{} bytes after the value", de.input.len())));
    }
    Ok(value)
}

struct Deserializer<'de> {
    /// What is left to read.
    input: &'de [u8],
    depth: usize,
    /// Names met so far (tag `NAME`), for `NAME_REF`: at most one per two input
    /// bytes, so it grows only with the input.
    names: Vec<&'de str>,
}

fn eof() -> Error {
    Error("unexpected end of input".into())
}

impl<'de> Deserializer<'de> {
    fn byte(&mut self) -> Result<u8, Error> {
        let (&first, rest) = self.input.split_first().ok_or_else(eof)?;
        self.input = rest;
        Ok(first)
    }

    fn peek(&self) -> Result<u8, Error> {
        self.input.first().copied().ok_or_else(eof)
    }

    fn varint(&mut self) -> Result<u64, Error> {
        // Most counts, lengths and numbers fit in one byte.
        if let Some((&first, rest)) = self.input.split_first() {
            if first < 0x80 {
                self.input = rest;
                return Ok(u64::from(first));
            }
        }
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if shift == 63 && bits > 1 {
                return Err(Error("varint overflows 64 bits".into()));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error("varint longer than 10 bytes".into()))
    }

    /// A count of elements, each at least one byte: never more than the bytes left,
    /// so a hostile count cannot make a visitor reserve a huge buffer.
    fn count(&mut self, per_element: usize) -> Result<usize, Error> {
        let count = self.varint()?;
        match usize::try_from(count) {
            Ok(count) if count.saturating_mul(per_element) <= self.input.len() => Ok(count),
            _ => Err(Error(format!(
                "count {count} exceeds the {} bytes left",
                self.input.len()
            ))),
        }
    }

    fn slice(&mut self) -> Result<&'de [u8], Error> {
        let len = self.count(1)?;
        let (bytes, rest) = self.input.split_at_checked(len).ok_or_else(eof)?;
        self.input = rest;
        Ok(bytes)
    }

    fn str(&mut self) -> Result<&'de str, Error> {
        std::str::from_utf8(self.slice()?).map_err(|err| Error(format!("string: {err}")))
    }

    /// The name after a `NAME` or `NAME_REF` tag.
    fn name(&mut self, tag: u8) -> Result<&'de str, Error> {
        if tag == NAME {
            let name = self.str()?;
            self.names.push(name);
            return Ok(name);
        }
        let index = self.varint()?;
        usize::try_from(index)
            .ok()
            .and_then(|i| self.names.get(i).copied())
            .ok_or_else(|| Error(format!("name #{index} was never defined")))
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        if self.depth >= MAX_DEPTH {
            return Err(Error(format!("nested deeper than {MAX_DEPTH}")));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn unexpected(tag: u8, wanted: &str) -> Error {
        Error(format!("tag {tag} where {wanted} was expected"))
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.byte()? {
            NULL => visitor.visit_unit(),
            FALSE => visitor.visit_bool(false),
            TRUE => visitor.visit_bool(true),
            UINT => visitor.visit_u64(self.varint()?),
            NINT => {
                let zigzag = self.varint()?;
                visitor.visit_i64(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
            }
            FLOAT => {
                let (bytes, rest) = self.input.split_first_chunk::<8>().ok_or_else(eof)?;
                self.input = rest;
                visitor.visit_f64(f64::from_le_bytes(*bytes))
            }
            STR => visitor.visit_borrowed_str(self.str()?),
            tag @ (NAME | NAME_REF) => visitor.visit_borrowed_str(self.name(tag)?),
            BYTES => visitor.visit_borrowed_bytes(self.slice()?),
            SEQ => {
                let count = self.count(1)?;
                self.nested(|de| {
                    let mut elements = Elements { de, left: count };
                    let value = visitor.visit_seq(&mut elements)?;
                    elements.finished(value)
                })
            }
            MAP => {
                let count = self.count(2)?;
                self.nested(|de| {
                    let mut elements = Elements { de, left: count };
                    let value = visitor.visit_map(&mut elements)?;
                    elements.finished(value)
                })
            }
            tag => Err(Error(format!("unknown tag {tag}"))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek()? == NULL {
            self.input = self.input.get(1..).unwrap_or_default();
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.byte()? {
            STR => visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(self.str()?)),
            tag @ (NAME | NAME_REF) => visitor.visit_enum(
                IntoDeserializer::<Error>::into_deserializer(self.name(tag)?),
            ),
            MAP => {
                if self.varint()? != 1 {
                    return Err(Error("an enum variant is a map of one entry".into()));
                }
                self.nested(|de| visitor.visit_enum(Enum { de }))
            }
            tag => Err(Deserializer::unexpected(tag, "an enum")),
        }
    }

    /// Field and variant names are matched as bytes: no UTF-8 check is needed
    /// to compare them with the names serde knows.
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.peek()? {
            STR => {
                self.byte()?;
                visitor.visit_borrowed_bytes(self.slice()?)
            }
            NAME_REF => {
                self.byte()?;
                visitor.visit_borrowed_str(self.name(NAME_REF)?)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip()?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
    }
}

impl Deserializer<'_> {
    /// Step over one value of any kind (an unknown field's).
    fn skip(&mut self) -> Result<(), Error> {
        match self.byte()? {
            NULL | FALSE | TRUE => Ok(()),
            UINT | NINT => self.varint().map(drop),
            FLOAT => {
                let rest = self.input.get(8..).ok_or_else(eof)?;
                self.input = rest;
                Ok(())
            }
            STR | BYTES => self.slice().map(drop),
            tag @ (NAME | NAME_REF) => self.name(tag).map(drop),
            SEQ => {
                let count = self.count(1)?;
                self.nested(|de| (0..count).try_for_each(|_| de.skip()))
            }
            MAP => {
                let count = self.count(2)?;
                self.nested(|de| (0..count).try_for_each(|_| de.skip().and_then(|()| de.skip())))
            }
            tag => Err(Error(format!("unknown tag {tag}"))),
        }
    }
}

/// Elements of a sequence, or entries of a map.
struct Elements<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl Elements<'_, '_> {
    /// The visitor must have taken every element it was offered.
    fn finished<T>(&self, value: T) -> Result<T, Error> {
        match self.left {
            0 => Ok(value),
            left => Err(Error(format!("{left} elements not consumed"))),
        }
    }
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// A variant with content: the one-entry map's key names it, its value holds it.
struct Enum<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::EnumAccess<'de> for Enum<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let variant = seed.deserialize(&mut *self.de)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Enum<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(&mut *self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(&mut *self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(&mut *self.de, visitor)
    }
}
