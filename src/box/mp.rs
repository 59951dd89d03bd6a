//! Small MessagePack helpers for box: building rows and reading the fields of system-space
//! tuples. Pure; owned by nobody.
//!
//! Writing goes through `rmp::encode` into a `Vec<u8>` (which cannot fail); reading returns
//! `None` for anything malformed, so a bad tuple becomes an error, never a panic.

/// A value to encode: enough for the rows box writes itself (bootstrap, DDL helpers).
#[derive(Clone, Debug, PartialEq)]
pub enum Mp {
    Nil,
    Bool(bool),
    Uint(u64),
    Int(i64),
    Str(String),
    Array(Vec<Mp>),
    Map(Vec<(Mp, Mp)>),
}

impl Mp {
    /// Append the encoding of `self` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        match self {
            Mp::Nil => rmp::encode::write_nil(out).unwrap_or(()),
            Mp::Bool(value) => rmp::encode::write_bool(out, *value).unwrap_or(()),
            Mp::Uint(value) => {
                let _ = rmp::encode::write_uint(out, *value);
            }
            Mp::Int(value) => {
                let _ = rmp::encode::write_sint(out, *value);
            }
            Mp::Str(text) => {
                let _ = rmp::encode::write_str(out, text);
            }
            Mp::Array(items) => {
                let _ = rmp::encode::write_array_len(out, items.len() as u32);
                for item in items {
                    item.encode(out);
                }
            }
            Mp::Map(pairs) => {
                let _ = rmp::encode::write_map_len(out, pairs.len() as u32);
                for (key, value) in pairs {
                    key.encode(out);
                    value.encode(out);
                }
            }
        }
    }

    /// The encoding of `self`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// `Mp::Str` from anything string-like.
pub fn s(text: &str) -> Mp {
    Mp::Str(text.to_string())
}

/// `Mp::Uint`.
pub fn u(value: u64) -> Mp {
    Mp::Uint(value)
}

/// The element count of an encoded array and the offset of its first element.
pub fn array_header(data: &[u8]) -> Option<(u32, usize)> {
    let mut cursor = data;
    let count = rmp::decode::read_array_len(&mut cursor).ok()?;
    Some((count, data.len() - cursor.len()))
}

/// The element count of an encoded map and the offset of its first key.
pub fn map_header(data: &[u8]) -> Option<(u32, usize)> {
    let mut cursor = data;
    let count = rmp::decode::read_map_len(&mut cursor).ok()?;
    Some((count, data.len() - cursor.len()))
}

/// The encoded values of an array, each as its own slice.
pub fn array_items(data: &[u8]) -> Option<Vec<&[u8]>> {
    let (count, mut offset) = array_header(data)?;
    let mut items = Vec::with_capacity(count.min(1024) as usize);
    for _ in 0..count {
        let size = super::key_def::skip_value(&data[offset..])?;
        items.push(&data[offset..offset + size]);
        offset += size;
    }
    Some(items)
}

/// The key/value pairs of an encoded map.
pub fn map_items(data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let (count, mut offset) = map_header(data)?;
    let mut items = Vec::with_capacity(count.min(1024) as usize);
    for _ in 0..count {
        let key_size = super::key_def::skip_value(&data[offset..])?;
        let key = &data[offset..offset + key_size];
        offset += key_size;
        let value_size = super::key_def::skip_value(&data[offset..])?;
        items.push((key, &data[offset..offset + value_size]));
        offset += value_size;
    }
    Some(items)
}

/// Whether `marker` starts a MessagePack extension.
pub fn is_ext(marker: rmp::Marker) -> bool {
    use rmp::Marker;
    matches!(
        marker,
        Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32
    )
}

/// An unsigned integer value (any width; a non-negative signed encoding too).
pub fn read_u64(data: &[u8]) -> Option<u64> {
    let mut cursor = data;
    rmp::decode::read_int::<u64, _>(&mut cursor).ok()
}

/// A string value (UTF-8 or not: names are compared as bytes).
pub fn read_str(data: &[u8]) -> Option<&[u8]> {
    let mut cursor = data;
    let len = rmp::decode::read_str_len(&mut cursor).ok()? as usize;
    let start = data.len() - cursor.len();
    data.get(start..start + len)
}

/// A string value as text.
pub fn read_string(data: &[u8]) -> Option<String> {
    read_str(data).map(|bytes| String::from_utf8_lossy(bytes).into_owned())
}

/// A boolean value.
pub fn read_bool(data: &[u8]) -> Option<bool> {
    match data.first()? {
        0xc2 => Some(false),
        0xc3 => Some(true),
        _ => None,
    }
}

/// Whether the value is nil.
pub fn is_nil(data: &[u8]) -> bool {
    data.first() == Some(&0xc0)
}

/// Whether the value is an array.
pub fn is_array(data: &[u8]) -> bool {
    matches!(data.first(), Some(0x90..=0x9f | 0xdc | 0xdd))
}

/// Whether the value is a map.
pub fn is_map(data: &[u8]) -> bool {
    matches!(data.first(), Some(0x80..=0x8f | 0xde | 0xdf))
}

/// Encode `fields` (each already encoded) as an array.
pub fn array_of(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len()).sum::<usize>() + 5);
    let _ = rmp::encode::write_array_len(&mut out, fields.len() as u32);
    for field in fields {
        out.extend_from_slice(field);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_read_back() {
        let row = Mp::Array(vec![
            u(512),
            s("tester"),
            Mp::Map(vec![(s("k"), Mp::Bool(true))]),
        ]);
        let bytes = row.to_vec();
        let items = array_items(&bytes).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(read_u64(items[0]), Some(512));
        assert_eq!(read_string(items[1]).as_deref(), Some("tester"));
        let map = map_items(items[2]).unwrap();
        assert_eq!(read_str(map[0].0), Some(&b"k"[..]));
        assert_eq!(read_bool(map[0].1), Some(true));
        assert_eq!(read_u64(&Mp::Int(-1).to_vec()), None);
        assert_eq!(array_items(&[0x93, 0x01]), None);
        assert_eq!(
            array_of(&[&[0x01], &[0xa1, b'x']]),
            vec![0x92, 0x01, 0xa1, b'x']
        );
    }
}
