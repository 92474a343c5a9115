//! Rows as JSON: a column's text value becomes a JSON value by its type (numbers, booleans,
//! embedded JSON; everything else a string), and the key is the replica identity's columns.

use serde_json::{Map, Value};

use super::pgoutput::{Datum, Relation};

const BOOL: u32 = 16;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const OID: u32 = 26;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const JSON: u32 = 114;
const JSONB: u32 = 3802;

/// One column's value as JSON. Integers and finite floats become numbers, booleans
/// booleans, `json`/`jsonb` the embedded value; `numeric` stays a string (no precision is
/// lost), as does every other type, in PostgreSQL's text format.
pub(crate) fn datum_json(type_oid: u32, datum: &Datum<'_>) -> Option<Value> {
    let text = match datum {
        Datum::Null => return Some(Value::Null),
        Datum::UnchangedToast => return None,
        Datum::Text(t) => *t,
        Datum::Binary(b) => {
            return Some(Value::String(
                b.iter().map(|x| format!("{x:02x}")).collect(),
            ))
        }
    };
    let s = String::from_utf8_lossy(text);
    let parsed = match type_oid {
        BOOL => match &*s {
            "t" => Some(Value::Bool(true)),
            "f" => Some(Value::Bool(false)),
            _ => None,
        },
        INT2 | INT4 | INT8 | OID => s.parse::<i64>().ok().map(Value::from),
        FLOAT4 | FLOAT8 => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        JSON | JSONB => serde_json::from_slice(text).ok(),
        _ => None,
    };
    Some(parsed.unwrap_or_else(|| Value::String(s.into_owned())))
}

/// The row as a JSON object (columns whose TOASTed value was not sent are left out).
pub(crate) fn row_json(relation: &Relation, tuple: &[Datum<'_>]) -> Map<String, Value> {
    let mut row = Map::new();
    for (column, datum) in relation.columns.iter().zip(tuple) {
        if let Some(v) = datum_json(column.type_oid, datum) {
            row.insert(column.name.clone(), v);
        }
    }
    row
}

/// The key columns of the row as a JSON object, or `None` when the table has no replica
/// identity key.
pub(crate) fn key_json(relation: &Relation, tuple: &[Datum<'_>]) -> Option<Map<String, Value>> {
    let mut key = Map::new();
    for (column, datum) in relation.columns.iter().zip(tuple) {
        if column.key {
            key.insert(
                column.name.clone(),
                datum_json(column.type_oid, datum).unwrap_or(Value::Null),
            );
        }
    }
    (!key.is_empty()).then_some(key)
}

/// A record's key: the key columns as a JSON object, wrapped as `{"table": …, "key": …}`
/// when the source reads several tables.
pub(crate) fn record_key(
    relation: &Relation,
    tuple: &[Datum<'_>],
    several_tables: bool,
) -> Option<Vec<u8>> {
    let key = key_json(relation, tuple)?;
    let key = if several_tables {
        serde_json::json!({
            "table": format!("{}.{}", relation.namespace, relation.name),
            "key": key,
        })
    } else {
        Value::Object(key)
    };
    serde_json::to_vec(&key).ok()
}

/// A record's value: the row as a JSON object.
pub(crate) fn record_value(relation: &Relation, tuple: &[Datum<'_>]) -> Option<Vec<u8>> {
    serde_json::to_vec(&Value::Object(row_json(relation, tuple))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_to_json() {
        let t = |oid, s: &'static str| datum_json(oid, &Datum::Text(s.as_bytes())).unwrap();
        assert_eq!(t(INT4, "42"), Value::from(42));
        assert_eq!(t(BOOL, "f"), Value::Bool(false));
        assert_eq!(t(FLOAT8, "NaN"), Value::String("NaN".into()));
        assert_eq!(t(JSONB, r#"{"a": 1}"#), serde_json::json!({"a": 1}));
        assert_eq!(t(1700, "1.10"), Value::String("1.10".into()));
        assert_eq!(t(INT8, "x"), Value::String("x".into()));
        assert_eq!(datum_json(25, &Datum::UnchangedToast), None);
    }
}
