use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn parse(v: Value) -> Predicate {
    Predicate::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn error(v: Value) -> String {
    Predicate::parse(&v).unwrap_err().to_string()
}

fn on(
    value: &Value,
    key: Option<&str>,
    headers: &[(&str, Option<&[u8]>)],
) -> impl Fn(&Predicate) -> bool {
    let value = value.clone();
    let key = key.map(str::to_owned);
    let headers: Vec<(String, Option<Vec<u8>>)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.map(<[u8]>::to_vec)))
        .collect();
    move |p: &Predicate| {
        let borrowed: Vec<(&str, Option<&[u8]>)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_deref()))
            .collect();
        p.matches(&Parts {
            value: Some(&value),
            key: key.as_deref(),
            headers: &borrowed,
        })
    }
}

#[test]
fn every_operator_on_an_order() {
    let order = json!({
        "status": "FILLED", "qty": 12, "price": 99.5, "region": "eu-west",
        "customer": {"id": "C-1", "vip": true}, "lines": [{"sku": "A"}], "note": null
    });
    let m = on(&order, Some("O-7"), &[("source", Some(b"web"))]);
    let yes = [
        json!({"pointer": "/status", "eq": "FILLED"}),
        json!({"pointer": "/status", "in": ["NEW", "FILLED"]}),
        json!({"pointer": "/status", "ne": "NEW"}),
        json!({"pointer": "/qty", "eq": 12.0}),
        json!({"pointer": "/qty", "gt": 10}),
        json!({"pointer": "/qty", "gte": 12}),
        json!({"pointer": "/price", "lt": 100}),
        json!({"pointer": "/price", "lte": 99.5}),
        json!({"pointer": "/region", "prefix": "eu-"}),
        json!({"pointer": "/region", "gt": "asia"}),
        json!({"pointer": "/customer/vip", "eq": true}),
        json!({"pointer": "/lines/0/sku", "eq": "A"}),
        json!({"pointer": "/note", "eq": null}),
        json!({"pointer": "/note", "exists": true}),
        json!({"pointer": "/missing", "exists": false}),
        json!({"key": true, "prefix": "O-"}),
        json!({"header": "source", "eq": "web"}),
        json!({"all": [{"pointer": "/qty", "gt": 1}, {"not": {"pointer": "/status", "eq": "NEW"}}]}),
        json!({"any": [{"pointer": "/qty", "gt": 100}, {"pointer": "/customer/vip", "eq": true}]}),
        json!({"not": {"pointer": "/missing", "eq": 1}}),
    ];
    for p in yes {
        assert!(m(&parse(p.clone())), "{p} should match");
    }
    let no = [
        json!({"pointer": "/status", "eq": "NEW"}),
        json!({"pointer": "/status", "gt": 5}),
        json!({"pointer": "/qty", "prefix": "1"}),
        json!({"pointer": "/qty", "eq": "12"}),
        json!({"pointer": "/missing", "ne": "x"}),
        json!({"pointer": "/missing", "exists": true}),
        json!({"pointer": "/customer", "eq": "C-1"}),
        json!({"header": "absent", "exists": true}),
        json!({"key": true, "eq": "O-8"}),
        json!({"all": [{"pointer": "/qty", "gt": 1}, {"pointer": "/status", "eq": "NEW"}]}),
    ];
    for p in no {
        assert!(!m(&parse(p.clone())), "{p} should not match");
    }
}

#[test]
fn text_operands_compare_with_numbers_by_value() {
    let m = on(&Value::Null, Some("42"), &[("n", Some(b"7"))]);
    assert!(m(&parse(json!({"key": true, "eq": 42}))));
    assert!(m(&parse(json!({"header": "n", "lt": 10}))));
    assert!(
        !m(&parse(json!({"header": "n", "gt": "8"}))),
        "strings order by bytes"
    );
}

#[test]
fn errors_name_the_path_of_the_problem() {
    assert_eq!(
        error(json!({"all": [{"pointer": "/a", "eq": 1}, {"pointer": "/b", "eqq": 2}]})),
        "all[1].eqq: unknown field `eqq`; expected one of pointer, key, header, eq, ne, in, gt, gte, lt, lte, prefix, exists, or all, any, not"
    );
    assert_eq!(
        error(json!({"pointer": "status", "eq": 1})),
        "pointer: \"status\" is not a JSON pointer; it must start with `/`"
    );
    assert_eq!(
        error(json!({"pointer": "/a"})),
        "missing the operator: one of eq, ne, in, gt, gte, lt, lte, prefix, exists"
    );
    assert_eq!(
        error(json!({"eq": 1})),
        "missing the operand: pointer, key or header"
    );
    assert_eq!(
        error(json!({"pointer": "/a", "eq": 1, "ne": 2})),
        "ne: a test has exactly one operator"
    );
    assert_eq!(
        error(json!({"pointer": "/a", "eq": [1]})),
        "eq: expected a string, number, boolean or null"
    );
    assert_eq!(
        error(json!({"pointer": "/a", "in": 1})),
        "in: expected a list of values"
    );
    assert_eq!(
        error(json!({"pointer": "/a", "in": [1, {}]})),
        "in[1]: expected a string, number, boolean or null"
    );
    assert_eq!(
        error(json!({"not": {"any": []}})),
        "not.any: must list at least one predicate"
    );
    assert_eq!(
        error(json!({"key": "yes", "eq": 1})),
        "key: expected `true` (the record key)"
    );
    assert_eq!(
        error(json!("status = NEW")),
        "expected an object such as {pointer: /status, eq: NEW}"
    );
    assert_eq!(
        error(json!({"all": [], "pointer": "/a"})),
        "`all` must be alone in its object; nest tests inside it"
    );
}

#[test]
fn size_and_depth_are_bounded() {
    let mut deep = json!({"pointer": "/a", "exists": true});
    for _ in 0..=MAX_DEPTH {
        deep = json!({ "not": deep });
    }
    assert!(error(deep).contains("nest at most 8 levels"));
    let wide: Vec<Value> = (0..MAX_NODES)
        .map(|i| json!({"pointer": format!("/f{i}"), "exists": true}))
        .collect();
    assert!(error(json!({ "any": wide })).contains("at most 64 tests"));
    let many: Vec<Value> = (0..=MAX_IN_VALUES).map(|i| json!(i)).collect();
    assert_eq!(
        error(json!({"pointer": "/a", "in": many})),
        "in: may list at most 256 values"
    );
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z/~0-9]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("pointer".to_owned()),
                    Just("eq".to_owned()),
                    Just("in".to_owned()),
                    Just("all".to_owned()),
                    Just("not".to_owned()),
                    Just("gt".to_owned()),
                    Just("key".to_owned()),
                    Just("exists".to_owned()),
                    "[a-z]{1,3}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Any JSON is either refused with a message or parsed; a parsed predicate evaluates on any
    /// JSON value without panicking.
    #[test]
    fn parsing_and_evaluating_never_panic(predicate in any_json(), record in any_json()) {
        if let Ok(p) = Predicate::parse(&predicate) {
            let _ = p.matches(&Parts { value: Some(&record), key: Some("k"), headers: &[] });
            let _ = p.matches(&Parts { value: None, key: None, headers: &[] });
        }
    }
}
