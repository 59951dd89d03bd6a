//! TEMPORARY stand-in until the real update ops land: only '=' and '+' on integers.
use crate::error::{BoxError, ErrCode};
pub fn check_ops(ops: &[u8], _base: u32) -> Result<(), BoxError> {
    if crate::r#box::mp::array_items(ops).is_some_and(|o| !o.is_empty()) {
        Ok(())
    } else {
        Err(BoxError::new(
            ErrCode::ILLEGAL_PARAMS,
            &[&"update operations must be a non-empty array"],
        ))
    }
}
pub fn update(tuple: &[u8], ops: &[u8], base: u32) -> Result<Vec<u8>, BoxError> {
    check_ops(ops, base)?;
    let mut fields: Vec<Vec<u8>> = crate::r#box::mp::array_items(tuple)
        .unwrap_or_default()
        .into_iter()
        .map(|f| f.to_vec())
        .collect();
    for op in crate::r#box::mp::array_items(ops).unwrap_or_default() {
        let parts = crate::r#box::mp::array_items(op)
            .ok_or_else(|| BoxError::new(ErrCode::UNKNOWN_UPDATE_OP, &[]))?;
        let name = crate::r#box::mp::read_str(parts[0]).unwrap_or(b"?")[0];
        let field = crate::r#box::mp::read_u64(parts[1]).unwrap_or(0) as usize - base as usize;
        match name {
            b'=' => {
                if field == fields.len() {
                    fields.push(parts[2].to_vec())
                } else {
                    fields[field] = parts[2].to_vec()
                }
            }
            b'+' => {
                let a = crate::r#box::mp::read_u64(&fields[field]).unwrap_or(0);
                let b = crate::r#box::mp::read_u64(parts[2]).unwrap_or(0);
                fields[field] = crate::r#box::mp::Mp::Uint(a + b).to_vec();
            }
            _ => return Err(BoxError::new(ErrCode::UNKNOWN_UPDATE_OP, &[])),
        }
    }
    let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    Ok(crate::r#box::mp::array_of(&refs))
}
pub fn upsert(tuple: &[u8], ops: &[u8], base: u32) -> (Vec<u8>, Vec<BoxError>) {
    match update(tuple, ops, base) {
        Ok(t) => (t, vec![]),
        Err(e) => (tuple.to_vec(), vec![e]),
    }
}
