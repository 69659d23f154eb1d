//! The meaning of the channel keys that shape delivery: `transforms` (each predicate parsed, each
//! pointer well formed), `subscribe.where` and `max_rate`.

use super::Semantic;
use crate::config::{AuthMode, ChannelConfig, Deliver, Transform};
use crate::predicate::Predicate;

impl Semantic<'_> {
    pub(super) fn check_transforms(
        &mut self,
        i: usize,
        channel: &ChannelConfig,
        auth_mode: Option<AuthMode>,
    ) {
        let at = |key: &str| format!("channels[{i}].{key}");
        for (j, step) in channel.transforms.iter().enumerate() {
            let step_at = |key: &str| at(&format!("transforms[{j}].{key}"));
            match step {
                Transform::Filter(spec) => {
                    if let Err(e) = Predicate::parse(&spec.0) {
                        let path = if e.path.is_empty() {
                            step_at("filter")
                        } else {
                            step_at(&format!("filter.{}", e.path))
                        };
                        self.error(&path, e.message);
                    }
                }
                Transform::Drop(list) | Transform::Mask(list) => {
                    let name = if matches!(step, Transform::Drop(_)) {
                        "drop"
                    } else {
                        "mask"
                    };
                    if list.is_empty() {
                        self.warn(&step_at(name), "lists no pointer: the step does nothing");
                    }
                    for (k, pointer) in list.iter().enumerate() {
                        self.step_pointer(&step_at(&format!("{name}[{k}]")), pointer);
                    }
                }
                Transform::Extract(pointer) => self.step_pointer(&step_at("extract"), pointer),
                Transform::Rename(moves) => {
                    for (from, to) in moves {
                        let path = step_at(&format!("rename.{from}"));
                        self.step_pointer(&path, from);
                        self.step_pointer(&path, to);
                    }
                }
                Transform::HeadersInto(spec) => {
                    self.pointer(&step_at("headers_into.pointer"), &spec.pointer)
                }
            }
        }
        if !channel.transforms.is_empty() && !channel.format.is_structured() {
            self.warn(
                &at("transforms"),
                "on a text or base64 channel the value is one JSON string: pointers find nothing in it",
            );
        }
        if let Some(rule) = &channel.subscribe.where_ {
            self.pointer(&at("subscribe.where.pointer"), &rule.pointer);
            if rule.pointer.is_empty() {
                self.error(
                    &at("subscribe.where.pointer"),
                    "must point into the value, e.g. /tenantId",
                );
            }
            if !channel.format.is_structured() {
                self.error(
                    &at("subscribe.where"),
                    "needs structured values (format json, avro, protobuf or json_schema)",
                );
            }
            if rule.equals_claim.is_empty() {
                self.error(&at("subscribe.where.equals_claim"), "must not be empty");
            }
            if auth_mode == Some(AuthMode::None) {
                self.error(
                    &at("subscribe.where"),
                    "needs auth.mode jwt: anonymous sessions have no claims to compare",
                );
            }
            if channel.deliver == Deliver::Reply {
                self.error(
                    &at("subscribe.where"),
                    "reply channels route each record to its session already",
                );
            }
        }
        if channel.max_rate == Some(0) {
            self.error(
                &at("max_rate"),
                "must be at least 1 (messages per second); leave it out for no limit",
            );
        }
    }

    /// A JSON pointer of a transform step: `/` first, and not the whole value (use `extract`
    /// or a filter for that).
    fn step_pointer(&mut self, path: &str, pointer: &str) {
        if pointer.is_empty() {
            self.error(
                path,
                "must point into the value (e.g. /payload), not be empty",
            );
        } else {
            self.pointer(path, pointer);
        }
    }
}
