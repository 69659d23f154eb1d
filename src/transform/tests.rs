use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::config::{HeadersInto, PredicateSpec, Transform};

fn chain(steps: Value) -> Chain {
    let steps: Vec<Transform> = serde_json::from_value(steps).expect("steps deserialize");
    Chain::compile(&steps).expect("steps compile")
}

fn order() -> Value {
    json!({
        "status": "FILLED",
        "internal": {"trace": "x"},
        "customer": {"id": "C-1", "ssn": "123-45-6789", "name": "Ann"},
        "card": {"number": "4111111111111111", "expiry": "12/29"},
        "lines": [{"sku": "A", "card": "1"}, {"sku": "B", "card": "2"}],
        "payload": {"total": 42.5}
    })
}

fn run(chain: &Chain, value: Value) -> Option<Value> {
    chain.apply(
        value,
        &Input {
            key: Some("O-1"),
            headers: &[("traceparent", Some(b"00-ab")), ("bin", Some(&[0xff]))],
        },
    )
}

#[test]
fn a_chain_of_several_steps_in_order() {
    let c = chain(json!([
        {"filter": {"pointer": "/status", "in": ["NEW", "FILLED"]}},
        {"drop": ["/internal", "/customer/ssn"]},
        {"mask": ["/card/number"]},
        {"extract": "/payload"}
    ]));
    assert_eq!(run(&c, order()), Some(json!({"total": 42.5})));
    let mut cancelled = order();
    cancelled["status"] = json!("CANCELLED");
    assert_eq!(run(&c, cancelled), None, "filtered out");
    assert_eq!(
        run(&c, json!({"status": "NEW"})),
        None,
        "no /payload to extract: filtered"
    );
}

#[test]
fn drop_and_mask_reach_nested_fields_and_arrays_and_ignore_missing_ones() {
    let c = chain(json!([
        {"drop": ["/internal", "/customer/ssn", "/nope", "/nope/deeper", "/lines/1"]},
        {"mask": ["/card/number", "/lines/*/card", "/missing"]}
    ]));
    assert_eq!(
        run(&c, order()).unwrap(),
        json!({
            "status": "FILLED",
            "customer": {"id": "C-1", "name": "Ann"},
            "card": {"number": "***", "expiry": "12/29"},
            "lines": [{"sku": "A", "card": "***"}],
            "payload": {"total": 42.5}
        })
    );
    assert_eq!(run(&c, json!("a string")), Some(json!("a string")));
    assert_eq!(run(&c, json!(null)), Some(json!(null)));
}

#[test]
fn rename_and_headers_into() {
    let c = chain(json!([
        {"rename": {"/customer/name": "/who/name", "/absent": "/x"}},
        {"headers_into": {"pointer": "/meta"}}
    ]));
    let out = run(&c, json!({"customer": {"name": "Ann"}})).unwrap();
    assert_eq!(
        out,
        json!({"customer": {}, "who": {"name": "Ann"}, "meta": {"traceparent": "00-ab"}}),
        "headers that are not UTF-8 are left out"
    );
    let only = Chain::compile(&[Transform::HeadersInto(HeadersInto {
        pointer: "/h".into(),
        names: vec!["nope".into()],
    })])
    .unwrap();
    assert_eq!(run(&only, json!({})).unwrap(), json!({"h": {}}));
}

#[test]
fn filters_see_key_headers_and_the_value_as_transformed_so_far() {
    let c = chain(json!([
        {"extract": "/payload"},
        {"filter": {"all": [{"pointer": "/total", "gt": 40}, {"key": true, "prefix": "O-"},
                            {"header": "traceparent", "exists": true}]}}
    ]));
    assert!(run(&c, order()).is_some());
}

#[test]
fn compile_errors_name_the_step() {
    let bad = [Transform::Filter(PredicateSpec(
        json!({"pointer": "/a", "eqq": 1}),
    ))];
    assert!(Chain::compile(&bad)
        .unwrap_err()
        .to_string()
        .starts_with("transforms[0].filter: eqq: unknown field"));
    let bad = [Transform::Drop(vec!["/ok".into(), "nope".into()])];
    assert_eq!(
        Chain::compile(&bad).unwrap_err(),
        "transforms[0].drop: \"nope\" is not a JSON pointer; it must start with `/`"
    );
}

#[test]
fn pointer_tokens_are_unescaped() {
    assert_eq!(tokens("/a~1b/c~0d").unwrap(), ["a/b", "c~d"]);
    assert_eq!(tokens("").unwrap(), Vec::<String>::new());
    let c = chain(json!([{"drop": ["/a~1b"]}]));
    assert_eq!(run(&c, json!({"a/b": 1, "a": 2})).unwrap(), json!({"a": 2}));
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i32>().prop_map(Value::from),
        "[a-z0-9*]{0,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-c0-2]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn any_pointer() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-c0-2*]", 0..4)
        .prop_map(|t| t.iter().map(|t| format!("/{t}")).collect())
}

proptest! {
    /// Every step on any JSON value: no panic; `drop` of a missing path is a no-op.
    #[test]
    fn every_step_on_any_value(value in any_json(), a in any_pointer(), b in any_pointer()) {
        let c = chain(json!([
            {"drop": [a.clone()]}, {"mask": [b.clone()]}, {"rename": {a.clone(): b.clone()}},
            {"headers_into": {"pointer": b.clone()}}, {"extract": a.clone()}
        ]));
        let _ = run(&c, value.clone());
        if !a.contains('*') && value.pointer(&a).is_none() {
            let drop = chain(json!([{"drop": [a]}]));
            prop_assert_eq!(run(&drop, value.clone()), Some(value));
        }
    }
}
