//! Type constraints of `variable` blocks (`string`, `list(number)`,
//! `object({ name = string })`…) and the conversions HCL applies to values.

use crate::eval::{number_value, to_bool, to_number, to_string, type_name};
use hcl_edit::expr::{Expression, ObjectKey};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A variable's declared type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Any,
    String,
    Number,
    Bool,
    List(Box<Ty>),
    Set(Box<Ty>),
    Map(Box<Ty>),
    Object(BTreeMap<String, (Ty, bool)>),
    Tuple(Vec<Ty>),
}

impl Ty {
    /// Reads a type expression.
    pub(crate) fn parse(expr: &Expression) -> Result<Ty, String> {
        Self::parse_depth(expr, 0)
    }

    fn parse_depth(expr: &Expression, depth: usize) -> Result<Ty, String> {
        if depth > 32 {
            return Err("type is nested too deeply".to_string());
        }
        match expr {
            Expression::Variable(ident) => match ident.as_str() {
                "any" => Ok(Ty::Any),
                "string" => Ok(Ty::String),
                "number" => Ok(Ty::Number),
                "bool" => Ok(Ty::Bool),
                "list" | "set" | "map" => Ok(match ident.as_str() {
                    "list" => Ty::List(Box::new(Ty::Any)),
                    "set" => Ty::Set(Box::new(Ty::Any)),
                    _ => Ty::Map(Box::new(Ty::Any)),
                }),
                other => Err(format!("unknown type {other:?}")),
            },
            Expression::FuncCall(call) => {
                let name = call.name.name.as_str();
                let args: Vec<&Expression> = call.args.iter().collect();
                let [arg] = args.as_slice() else {
                    return Err(format!("type {name}(…) takes exactly one argument"));
                };
                match name {
                    "list" => Ok(Ty::List(Box::new(Self::parse_depth(arg, depth + 1)?))),
                    "set" => Ok(Ty::Set(Box::new(Self::parse_depth(arg, depth + 1)?))),
                    "map" => Ok(Ty::Map(Box::new(Self::parse_depth(arg, depth + 1)?))),
                    "optional" => Err("optional(…) is only allowed inside object(…)".to_string()),
                    "tuple" => match arg {
                        Expression::Array(items) => Ok(Ty::Tuple(
                            items
                                .iter()
                                .map(|item| Self::parse_depth(item, depth + 1))
                                .collect::<Result<_, _>>()?,
                        )),
                        _ => Err("tuple(…) takes a list of types".to_string()),
                    },
                    "object" => match arg {
                        Expression::Object(object) => {
                            let mut fields = BTreeMap::new();
                            for (key, value) in object.iter() {
                                let key = match key {
                                    ObjectKey::Ident(ident) => ident.as_str().to_string(),
                                    ObjectKey::Expression(Expression::String(text)) => text.value().clone(),
                                    ObjectKey::Expression(Expression::Variable(ident)) => ident.as_str().to_string(),
                                    ObjectKey::Expression(_) => {
                                        return Err("object type attribute names must be plain names".to_string());
                                    }
                                };
                                let field = match value.expr() {
                                    Expression::FuncCall(inner) if inner.name.name.as_str() == "optional" => {
                                        let inner_args: Vec<&Expression> = inner.args.iter().collect();
                                        match inner_args.first() {
                                            Some(inner_ty) => (Self::parse_depth(inner_ty, depth + 1)?, true),
                                            None => return Err("optional(…) takes a type".to_string()),
                                        }
                                    }
                                    other => (Self::parse_depth(other, depth + 1)?, false),
                                };
                                fields.insert(key, field);
                            }
                            Ok(Ty::Object(fields))
                        }
                        _ => Err("object(…) takes an object of attribute types".to_string()),
                    },
                    other => Err(format!("unknown type constructor {other:?}")),
                }
            }
            _ => Err("a type must be a type keyword such as string or list(number)".to_string()),
        }
    }

    /// Whether a value given as text on the command line should be taken
    /// literally (strings) rather than parsed as an HCL expression.
    pub(crate) fn takes_raw_string(&self) -> bool {
        matches!(self, Ty::String | Ty::Any)
    }

    /// Converts a value to this type, as HCL's conversion does.
    pub(crate) fn convert(&self, value: Value) -> Result<Value, String> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        match self {
            Ty::Any => Ok(value),
            Ty::String => match value {
                Value::Array(_) | Value::Object(_) => Err(format!("a string is required, not a {}", type_name(&value))),
                other => to_string(&other).map(Value::String),
            },
            Ty::Number => to_number(&value).map(number_value),
            Ty::Bool => to_bool(&value).map(Value::Bool),
            Ty::List(inner) | Ty::Set(inner) => match value {
                Value::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for (idx, item) in items.into_iter().enumerate() {
                        out.push(
                            inner
                                .convert(item)
                                .map_err(|message| format!("element {idx}: {message}"))?,
                        );
                    }
                    if matches!(self, Ty::Set(_)) {
                        let mut unique: Vec<Value> = Vec::new();
                        for item in out {
                            if !unique.contains(&item) {
                                unique.push(item);
                            }
                        }
                        out = unique;
                    }
                    Ok(Value::Array(out))
                }
                other => Err(format!("a list is required, not a {}", type_name(&other))),
            },
            Ty::Map(inner) => match value {
                Value::Object(map) => {
                    let mut out = Map::new();
                    for (key, item) in map {
                        let converted = inner
                            .convert(item)
                            .map_err(|message| format!("key {key:?}: {message}"))?;
                        out.insert(key, converted);
                    }
                    Ok(Value::Object(out))
                }
                other => Err(format!("a map is required, not a {}", type_name(&other))),
            },
            Ty::Object(fields) => match value {
                Value::Object(mut map) => {
                    let mut out = Map::new();
                    for (name, (field_ty, optional)) in fields {
                        match map.remove(name) {
                            Some(item) => {
                                let converted = field_ty
                                    .convert(item)
                                    .map_err(|message| format!("attribute {name:?}: {message}"))?;
                                out.insert(name.clone(), converted);
                            }
                            None if *optional => {
                                out.insert(name.clone(), Value::Null);
                            }
                            None => return Err(format!("attribute {name:?} is required")),
                        }
                    }
                    if let Some(extra) = map.keys().next() {
                        return Err(format!("unexpected attribute {extra:?}"));
                    }
                    Ok(Value::Object(out))
                }
                other => Err(format!("an object is required, not a {}", type_name(&other))),
            },
            Ty::Tuple(items_ty) => match value {
                Value::Array(items) => {
                    if items.len() != items_ty.len() {
                        return Err(format!(
                            "a tuple of {} elements is required, not {}",
                            items_ty.len(),
                            items.len()
                        ));
                    }
                    let mut out = Vec::with_capacity(items.len());
                    for (idx, (item, item_ty)) in items.into_iter().zip(items_ty).enumerate() {
                        out.push(
                            item_ty
                                .convert(item)
                                .map_err(|message| format!("element {idx}: {message}"))?,
                        );
                    }
                    Ok(Value::Array(out))
                }
                other => Err(format!("a tuple is required, not a {}", type_name(&other))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(text: &str) -> Ty {
        Ty::parse(&hcl_edit::parser::parse_expr(text).expect("type parses")).expect("type is valid")
    }

    #[test]
    fn converts_like_hcl() {
        assert_eq!(ty("number").convert(json!("8")), Ok(json!(8)));
        assert_eq!(ty("list(string)").convert(json!([1, true])), Ok(json!(["1", "true"])));
        assert_eq!(
            ty("object({ name = string, port = optional(number) })").convert(json!({"name": "a"})),
            Ok(json!({"name": "a", "port": null}))
        );
        assert!(ty("map(number)").convert(json!({"a": "x"})).is_err());
        assert!(Ty::parse(&hcl_edit::parser::parse_expr("strin").expect("parses")).is_err());
    }
}
