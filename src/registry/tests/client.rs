//! The registry's answers, as the client parses them (literal bodies as Confluent and
//! Apicurio send them).

use crate::registry::client::{parse_answer, parse_failure, Failure, ReferenceSpec};
use crate::registry::SchemaKind;

#[test]
fn a_schema_by_id_without_a_type_is_avro() {
    let answer = parse_answer(br#"{"schema":"{\"type\":\"string\"}"}"#).unwrap();
    assert_eq!(answer.kind, SchemaKind::Avro);
    assert_eq!(answer.schema, "{\"type\":\"string\"}");
    assert_eq!(answer.id, None);
    assert!(answer.references.is_empty());
}

#[test]
fn a_protobuf_schema_with_references() {
    let body = br#"{"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";","references":[{"name":"common/money.proto","subject":"money","version":3}]}"#;
    let answer = parse_answer(body).unwrap();
    assert_eq!(answer.kind, SchemaKind::Protobuf);
    assert_eq!(
        answer.references,
        [ReferenceSpec {
            name: "common/money.proto".into(),
            subject: "money".into(),
            version: 3
        }]
    );
}

#[test]
fn a_subject_version_carries_its_id() {
    let body = br#"{"subject":"orders-value","version":2,"id":41,"schemaType":"JSON","schema":"{}","references":null}"#;
    let answer = parse_answer(body).unwrap();
    assert_eq!((answer.id, answer.kind), (Some(41), SchemaKind::JsonSchema));
}

#[test]
fn answers_that_are_not_schemas_are_errors() {
    let e = parse_answer(br#"{"schemaType":"XML","schema":"<a/>"}"#).unwrap_err();
    assert_eq!(
        e,
        "expected schemaType AVRO, PROTOBUF or JSON, found \"XML\""
    );
    assert!(parse_answer(b"<html>")
        .unwrap_err()
        .starts_with("expected a schema answer"));
    assert!(parse_answer(br#"{"id":1}"#).is_err());
}

#[test]
fn only_the_registrys_own_404_means_not_found() {
    let body = br#"{"error_code":40403,"message":"Schema 9 not found"}"#;
    assert_eq!(
        parse_failure(404, body),
        Failure::NotFound("Schema 9 not found".into())
    );
    let apicurio =
        br#"{"error_code":40401,"message":"No artifact with ID 'x' in group 'null' was found."}"#;
    assert!(matches!(parse_failure(404, apicurio), Failure::NotFound(_)));
    let bare = parse_failure(404, b"<html>Not Found</html>");
    assert!(
        matches!(&bare, Failure::Error(m) if m.contains("schema_registry.url")),
        "{bare:?}"
    );
    let server = parse_failure(
        500,
        br#"{"error_code":50001,"message":"Error in the backend data store"}"#,
    );
    assert_eq!(
        server,
        Failure::Error("the registry answered 500: Error in the backend data store".into())
    );
    assert_eq!(
        parse_failure(401, b"Unauthorized"),
        Failure::Error("the registry answered 401: Unauthorized".into())
    );
}
