//! TEMPORARY stand-in until the real key_def lands (naive, rmpv-based).
use crate::error::{BoxError, ErrCode};
use std::cmp::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Any,
    Unsigned,
    String,
    Number,
    Integer,
    Boolean,
    Scalar,
    Array,
    Map,
}
impl FieldType {
    pub fn parse(name: &str) -> Option<FieldType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "num" | "unsigned" => FieldType::Unsigned,
            "str" | "string" => FieldType::String,
            "number" => FieldType::Number,
            "integer" | "int" => FieldType::Integer,
            "boolean" => FieldType::Boolean,
            "scalar" => FieldType::Scalar,
            "array" => FieldType::Array,
            "map" => FieldType::Map,
            "*" | "any" => FieldType::Any,
            _ => return None,
        })
    }
    pub fn name_16(self) -> &'static str {
        match self {
            FieldType::Unsigned => "NUM",
            FieldType::String => "STR",
            FieldType::Number => "NUMBER",
            FieldType::Array => "ARRAY",
            FieldType::Integer => "INTEGER",
            FieldType::Boolean => "BOOLEAN",
            FieldType::Scalar => "SCALAR",
            FieldType::Map => "MAP",
            FieldType::Any => "*",
        }
    }
    fn matches(self, v: &rmpv::Value) -> bool {
        use rmpv::Value as V;
        match self {
            FieldType::Any => true,
            FieldType::Unsigned => matches!(v, V::Integer(i) if i.as_u64().is_some()),
            FieldType::Integer => matches!(v, V::Integer(_)),
            FieldType::Number => matches!(v, V::Integer(_) | V::F32(_) | V::F64(_)),
            FieldType::String => matches!(v, V::String(_)),
            FieldType::Boolean => matches!(v, V::Boolean(_)),
            FieldType::Scalar => !matches!(v, V::Array(_) | V::Map(_)),
            FieldType::Array => matches!(v, V::Array(_)),
            FieldType::Map => matches!(v, V::Map(_)),
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPart {
    pub fieldno: u32,
    pub field_type: FieldType,
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDef {
    pub parts: Vec<KeyPart>,
}

fn dec(b: &[u8]) -> Option<rmpv::Value> {
    let mut c = b;
    rmpv::decode::read_value(&mut c).ok()
}
pub fn skip_value(data: &[u8]) -> Option<usize> {
    let mut c = data;
    rmpv::decode::read_value(&mut c).ok()?;
    Some(data.len() - c.len())
}
pub fn tuple_field(t: &[u8], n: u32) -> Option<&[u8]> {
    let (count, mut off) = crate::r#box::mp::array_header(t)?;
    if n >= count {
        return None;
    }
    for _ in 0..n {
        off += skip_value(&t[off..])?;
    }
    let l = skip_value(&t[off..])?;
    Some(&t[off..off + l])
}
pub fn tuple_field_count(t: &[u8]) -> Option<u32> {
    crate::r#box::mp::array_header(t).map(|x| x.0)
}
fn rank(v: &rmpv::Value) -> u8 {
    use rmpv::Value as V;
    match v {
        V::Nil => 0,
        V::Boolean(_) => 1,
        V::Integer(_) | V::F32(_) | V::F64(_) => 2,
        V::String(_) => 3,
        V::Binary(_) => 4,
        _ => 5,
    }
}
fn num(v: &rmpv::Value) -> f64 {
    use rmpv::Value as V;
    match v {
        V::Integer(i) => i.as_f64().unwrap_or(0.0),
        V::F32(f) => *f as f64,
        V::F64(f) => *f,
        _ => 0.0,
    }
}
fn cmpv(a: &rmpv::Value, b: &rmpv::Value) -> Ordering {
    use rmpv::Value as V;
    match (a, b) {
        (V::Integer(x), V::Integer(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) => p.cmp(&q),
            _ => x.as_u64().cmp(&y.as_u64()),
        },
        (V::String(x), V::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (V::Boolean(x), V::Boolean(y)) => x.cmp(y),
        _ if rank(a) == 2 && rank(b) == 2 => num(a).partial_cmp(&num(b)).unwrap_or(Ordering::Equal),
        _ => rank(a).cmp(&rank(b)),
    }
}
pub fn compare_fields(a: &[u8], b: &[u8], _t: FieldType) -> Ordering {
    match (dec(a), dec(b)) {
        (Some(x), Some(y)) => cmpv(&x, &y),
        _ => a.cmp(b),
    }
}
pub fn compare_tuples(a: &[u8], b: &[u8], def: &KeyDef) -> Ordering {
    for p in &def.parts {
        let o = match (tuple_field(a, p.fieldno), tuple_field(b, p.fieldno)) {
            (Some(x), Some(y)) => compare_fields(x, y, p.field_type),
            (x, y) => x.is_some().cmp(&y.is_some()),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}
pub fn compare_tuple_with_key(t: &[u8], key: &[u8], def: &KeyDef) -> Ordering {
    let Some(items) = crate::r#box::mp::array_items(key) else {
        return Ordering::Equal;
    };
    for (p, k) in def.parts.iter().zip(items) {
        let o = match tuple_field(t, p.fieldno) {
            Some(x) => compare_fields(x, k, p.field_type),
            None => Ordering::Less,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}
fn hash_bytes(v: &rmpv::Value, h: &mut u32) {
    let s = format!("{v}");
    for b in s.bytes() {
        *h = h.wrapping_mul(31).wrapping_add(b as u32);
    }
}
pub fn hash_tuple(t: &[u8], def: &KeyDef) -> u32 {
    let mut h = 7;
    for p in &def.parts {
        if let Some(v) = tuple_field(t, p.fieldno).and_then(dec) {
            hash_bytes(&v, &mut h)
        }
    }
    h
}
pub fn hash_key(k: &[u8], _def: &KeyDef) -> u32 {
    let mut h = 7;
    for f in crate::r#box::mp::array_items(k).unwrap_or_default() {
        if let Some(v) = dec(f) {
            hash_bytes(&v, &mut h)
        }
    }
    h
}
pub fn validate_key(key: &[u8], def: &KeyDef, allow_partial: bool) -> Result<u32, BoxError> {
    let items = crate::r#box::mp::array_items(key)
        .ok_or_else(|| BoxError::new(ErrCode::TUPLE_NOT_ARRAY, &[]))?;
    let n = items.len() as u32;
    let parts = def.parts.len() as u32;
    if n > parts {
        return Err(BoxError::new(ErrCode::KEY_PART_COUNT, &[&parts, &n]));
    }
    if !allow_partial && n < parts {
        return Err(BoxError::new(ErrCode::EXACT_MATCH, &[&parts, &n]));
    }
    for (i, (p, k)) in def.parts.iter().zip(items).enumerate() {
        if !dec(k).is_some_and(|v| p.field_type.matches(&v)) {
            return Err(BoxError::new(
                ErrCode::KEY_PART_TYPE,
                &[&i, &p.field_type.name_16()],
            ));
        }
    }
    Ok(n)
}
pub fn validate_tuple(
    t: &[u8],
    defs: &[&KeyDef],
    field_count: u32,
    space: &str,
) -> Result<(), BoxError> {
    let items = crate::r#box::mp::array_items(t)
        .ok_or_else(|| BoxError::new(ErrCode::TUPLE_NOT_ARRAY, &[]))?;
    let n = items.len() as u32;
    if field_count != 0 && n != field_count {
        return Err(BoxError::new(
            ErrCode::SPACE_FIELD_COUNT,
            &[&n, &space, &field_count],
        ));
    }
    for d in defs {
        for p in &d.parts {
            match items.get(p.fieldno as usize) {
                None => {
                    return Err(BoxError::new(
                        ErrCode::INDEX_FIELD_COUNT,
                        &[&n, &(p.fieldno + 1)],
                    ));
                }
                Some(f) => {
                    if !dec(f).is_some_and(|v| p.field_type.matches(&v)) {
                        return Err(BoxError::new(
                            ErrCode::FIELD_TYPE,
                            &[&(p.fieldno + 1), &p.field_type.name_16()],
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
pub fn extract_key(t: &[u8], def: &KeyDef) -> Vec<u8> {
    let f: Vec<&[u8]> = def
        .parts
        .iter()
        .filter_map(|p| tuple_field(t, p.fieldno))
        .collect();
    crate::r#box::mp::array_of(&f)
}
pub fn merge_with_primary(s: &KeyDef, p: &KeyDef) -> KeyDef {
    let mut parts = s.parts.clone();
    for x in &p.parts {
        if !parts.iter().any(|y| y.fieldno == x.fieldno) {
            parts.push(*x);
        }
    }
    KeyDef { parts }
}
