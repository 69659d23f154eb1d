use super::*;
use crate::config::InboundConfig;
use crate::metrics::Metrics;

fn inbound(yaml: &str) -> Inbound {
    let configs: Vec<InboundConfig> = serde_yaml::from_str(yaml).unwrap();
    let catalogue = Catalogue::new(&[], &configs, &Metrics::new(&[], &[], &[]));
    Inbound::new(Arc::new(catalogue), None, None)
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

fn user(id: &str) -> Identity {
    Identity {
        user: Some(id.into()),
        ..Identity::default()
    }
}

#[test]
fn builds_key_and_bridge_headers() {
    let inbound = inbound("[{channel: c, topic: t, key: user}, {channel: p, topic: t2, key: {pointer: /acc}, allow: anonymous}]");
    let alice = user("alice");
    let publisher = Publisher {
        identity: &alice,
        session: Some("s-1"),
    };
    let id = raw("\"p1\"");
    let client_headers = BTreeMap::from([("h".to_owned(), "v".to_owned())]);
    let prepared = inbound
        .prepare(
            "c",
            &raw("{\"a\":1}"),
            &client_headers,
            Some(&id),
            &publisher,
        )
        .unwrap();
    assert_eq!(prepared.key.as_deref(), Some("alice"));
    assert_eq!(prepared.payload, b"{\"a\":1}");
    assert_eq!(
        prepared.headers,
        [
            ("h", "v"),
            ("bridge-user", "alice"),
            ("bridge-session", "s-1"),
            ("correlation-id", "p1")
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let anonymous = Identity::anonymous();
    let publisher = Publisher {
        identity: &anonymous,
        session: None,
    };
    let prepared = inbound
        .prepare("p", &raw("{\"acc\":7}"), &BTreeMap::new(), None, &publisher)
        .unwrap();
    assert_eq!(
        (prepared.key.as_deref(), prepared.topic()),
        (Some("7"), "t2")
    );
    let refusal = inbound
        .prepare("p", &raw("{}"), &BTreeMap::new(), None, &publisher)
        .err()
        .unwrap();
    assert_eq!(refusal.code, ErrorCode::BadRequest);
}

#[test]
fn refuses_reserved_headers_unknown_channels_and_strangers() {
    let inbound = inbound("[{channel: c, topic: t}]");
    let alice = user("alice");
    let publisher = Publisher {
        identity: &alice,
        session: None,
    };
    let spoof = BTreeMap::from([("Bridge-User".to_owned(), "mallory".to_owned())]);
    assert_eq!(
        inbound
            .prepare("c", &raw("1"), &spoof, None, &publisher)
            .err()
            .unwrap()
            .code,
        ErrorCode::BadRequest
    );
    assert_eq!(
        inbound
            .prepare("x", &raw("1"), &BTreeMap::new(), None, &publisher)
            .err()
            .unwrap()
            .code,
        ErrorCode::UnknownChannel
    );
    let anonymous = Identity::anonymous();
    let stranger = Publisher {
        identity: &anonymous,
        session: None,
    };
    assert_eq!(
        inbound
            .prepare("c", &raw("1"), &BTreeMap::new(), None, &stranger)
            .err()
            .unwrap()
            .code,
        ErrorCode::Forbidden
    );
}

fn staff(id: &str, roles: &[&str], claims: serde_json::Value) -> Identity {
    Identity {
        user: Some(id.into()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        claims: claims.as_object().cloned().unwrap_or_default(),
        expires_at: None,
    }
}

/// `prepare` of `data` on `channel` for `identity`: the record key, or the refusal's code and
/// message.
fn key_of(
    inbound: &Inbound,
    channel: &str,
    data: &str,
    identity: &Identity,
) -> Result<Option<String>, (ErrorCode, String)> {
    let publisher = Publisher {
        identity,
        session: None,
    };
    inbound
        .prepare(channel, &raw(data), &BTreeMap::new(), None, &publisher)
        .map(|prepared| prepared.key)
        .map_err(|refusal| (refusal.code, refusal.message))
}

#[test]
fn the_computed_key_is_checked_against_what_the_token_may_write() {
    let inbound = inbound(
        "[{channel: assisted, topic: t, key: {pointer: /customer}, keys: {claim: customers}, any_key_roles: [supervisor]},
          {channel: mine, topic: t, key: {pointer: /customer}, keys: own},
          {channel: open, topic: t, key: {pointer: /customer}}]",
    );
    let ann = staff(
        "A-1",
        &["staff"],
        serde_json::json!({"customers": ["C-5", "C-8"]}),
    );
    assert_eq!(
        key_of(&inbound, "assisted", r#"{"customer": "C-5"}"#, &ann),
        Ok(Some("C-5".into()))
    );
    assert_eq!(
        key_of(&inbound, "assisted", r#"{"customer": "C-9"}"#, &ann),
        Err((
            ErrorCode::Forbidden,
            "publishing on `assisted` with key `C-9` is not allowed: key `C-9` is not listed in your `customers` claim".into()
        ))
    );
    // A number at the pointer is the key in decimal, checked like any other.
    assert_eq!(
        key_of(&inbound, "assisted", r#"{"customer": 5}"#, &ann)
            .unwrap_err()
            .0,
        ErrorCode::Forbidden
    );
    let sue = staff("S-1", &["supervisor"], serde_json::json!({}));
    assert_eq!(
        key_of(&inbound, "assisted", r#"{"customer": "C-9"}"#, &sue),
        Ok(Some("C-9".into())),
        "any_key_roles"
    );
    // Bad input: the claim missing or of the wrong type, the pointer missing.
    let bare = staff("A-2", &["staff"], serde_json::json!({}));
    assert_eq!(
        key_of(&inbound, "assisted", r#"{"customer": "C-5"}"#, &bare),
        Err((
            ErrorCode::Forbidden,
            "publishing on `assisted` with key `C-5` is not allowed: your token has no `customers` claim, which lists the keys you may publish to".into()
        ))
    );
    let odd = staff(
        "A-3",
        &["staff"],
        serde_json::json!({"customers": {"C-5": true}}),
    );
    assert_eq!(
        key_of(&inbound, "assisted", r#"{"customer": "C-5"}"#, &odd),
        Err((
            ErrorCode::Forbidden,
            "publishing on `assisted` with key `C-5` is not allowed: your token's `customers` claim is an object: expected a list of strings (the keys you may publish to)".into()
        ))
    );
    let one = staff("A-4", &[], serde_json::json!({"customers": "C-5"}));
    assert_eq!(
        key_of(&inbound, "assisted", r#"{"customer": "C-5"}"#, &one),
        Ok(Some("C-5".into())),
        "one string is a list of one"
    );
    assert_eq!(
        key_of(&inbound, "assisted", r#"{"client": "C-5"}"#, &ann),
        Err((
            ErrorCode::BadRequest,
            "`data` has no string or number at `/customer` (the record key of `assisted`)".into()
        ))
    );
    // keys: own
    let c1 = user("C-1");
    assert_eq!(
        key_of(&inbound, "mine", r#"{"customer": "C-1"}"#, &c1),
        Ok(Some("C-1".into()))
    );
    assert_eq!(
        key_of(&inbound, "mine", r#"{"customer": "C-2"}"#, &c1),
        Err((
            ErrorCode::Forbidden,
            "publishing on `mine` with key `C-2` is not allowed: this channel only allows you to publish to your own key (your user id), not `C-2`".into()
        ))
    );
    // keys: any (the default): no check, as before.
    assert_eq!(
        key_of(&inbound, "open", r#"{"customer": "C-2"}"#, &c1),
        Ok(Some("C-2".into()))
    );
}

#[test]
fn identity_headers_carry_roles_and_claims_and_cannot_be_spoofed() {
    let inbound = inbound(
        "[{channel: c, topic: t, key: user, identity_headers: [roles, customers, tier, realm_access.roles, absent]}]",
    );
    let ann = staff(
        "A-1",
        &["staff", "assistant"],
        serde_json::json!({"customers": ["C-5", "C-8"], "tier": "gold", "realm_access": {"roles": ["staff"]}}),
    );
    let publisher = Publisher {
        identity: &ann,
        session: None,
    };
    let prepared = inbound
        .prepare("c", &raw("1"), &BTreeMap::new(), None, &publisher)
        .unwrap();
    assert_eq!(
        prepared.headers,
        [
            ("bridge-user", "A-1"),
            ("bridge-roles", "staff,assistant"),
            ("bridge-claim-customers", r#"["C-5","C-8"]"#),
            ("bridge-claim-tier", "gold"),
            ("bridge-claim-realm_access.roles", r#"["staff"]"#),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    for name in [
        "bridge-roles",
        "Bridge-Roles",
        "bridge-claim-customers",
        "BRIDGE-CLAIM-X",
    ] {
        let spoof = BTreeMap::from([(name.to_owned(), "forged".to_owned())]);
        let refusal = inbound
            .prepare("c", &raw("1"), &spoof, None, &publisher)
            .err()
            .unwrap();
        assert_eq!(
            (refusal.code, refusal.message),
            (
                ErrorCode::BadRequest,
                format!("header `{name}` is reserved: the bridge sets it")
            )
        );
    }
}
