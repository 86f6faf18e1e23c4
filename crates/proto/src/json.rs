//! The proto3 JSON mapping of Flotilla messages, driven by the embedded descriptors.
//!
//! JSON in is checked strictly (unknown fields and wrong types are errors that name the field),
//! JSON out uses lowerCamelCase names and leaves default values out.

use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, ReflectMessage};

use crate::descriptor_pool;

/// Why a payload does not fit its schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("unknown message type `{0}`")]
    UnknownMessage(String),
    #[error("{message}: field `{path}`: {reason}")]
    InvalidField {
        message: String,
        path: String,
        reason: String,
    },
    #[error("{message}: {reason}")]
    InvalidJson { message: String, reason: String },
    #[error("{message}: required field `{field}` is missing or empty")]
    MissingField { message: String, field: String },
    #[error("{message}: payload is not valid protobuf: {source}")]
    Decode {
        message: String,
        #[source]
        source: prost::DecodeError,
    },
}

/// The descriptor of a fully qualified message name (`flotilla.v1.Build`).
pub fn message_descriptor(full_name: &str) -> Result<MessageDescriptor, SchemaError> {
    descriptor_pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| SchemaError::UnknownMessage(full_name.to_owned()))
}

/// Parses JSON (proto3 mapping; snake_case names accepted) into a message of `full_name`,
/// checking that every field of `required` is set.
pub fn parse_json(
    full_name: &str,
    json: &[u8],
    required: &[&str],
) -> Result<DynamicMessage, SchemaError> {
    let descriptor = message_descriptor(full_name)?;
    let mut track = serde_path_to_error::Track::new();
    let mut de = serde_json::Deserializer::from_slice(json);
    let tracked = serde_path_to_error::Deserializer::new(&mut de, &mut track);
    let parsed =
        DynamicMessage::deserialize_with_options(descriptor, tracked, &DeserializeOptions::new())
            .and_then(|message| de.end().map(|()| message));
    let message = match parsed {
        Ok(message) => message,
        Err(err) => {
            let path = track.path().to_string();
            let reason = err.to_string();
            return Err(if path.is_empty() || path == "." {
                SchemaError::InvalidJson {
                    message: full_name.to_owned(),
                    reason,
                }
            } else {
                SchemaError::InvalidField {
                    message: full_name.to_owned(),
                    path,
                    reason,
                }
            });
        }
    };
    check_required(&message, required)?;
    Ok(message)
}

/// Checks that every field named in `required` (proto names) holds a non-default value.
pub fn check_required(message: &DynamicMessage, required: &[&str]) -> Result<(), SchemaError> {
    let descriptor = message.descriptor();
    for name in required {
        let missing = match descriptor.get_field_by_name(name) {
            Some(field) => !message.has_field(&field),
            None => true,
        };
        if missing {
            let json_name = descriptor
                .get_field_by_name(name)
                .map(|f| f.json_name().to_owned())
                .unwrap_or_else(|| (*name).to_owned());
            return Err(SchemaError::MissingField {
                message: descriptor.full_name().to_owned(),
                field: json_name,
            });
        }
    }
    Ok(())
}

/// Decodes protobuf bytes of `full_name` into a dynamic message.
pub fn decode(full_name: &str, bytes: &[u8]) -> Result<DynamicMessage, SchemaError> {
    let descriptor = message_descriptor(full_name)?;
    DynamicMessage::decode(descriptor, bytes).map_err(|source| SchemaError::Decode {
        message: full_name.to_owned(),
        source,
    })
}

/// Renders protobuf bytes of `full_name` as proto3 JSON.
pub fn protobuf_to_json(full_name: &str, bytes: &[u8]) -> Result<serde_json::Value, SchemaError> {
    dynamic_to_json(&decode(full_name, bytes)?)
}

/// Renders a typed message as proto3 JSON.
pub fn to_json<M: Message + prost::Name>(message: &M) -> Result<serde_json::Value, SchemaError> {
    protobuf_to_json(&M::full_name(), &message.encode_to_vec())
}

/// Parses proto3 JSON into a typed message (no required-field check; see [`parse_json`]).
pub fn from_json<M: Message + prost::Name + Default>(json: &[u8]) -> Result<M, SchemaError> {
    let name = M::full_name();
    let dynamic = parse_json(&name, json, &[])?;
    M::decode(dynamic.encode_to_vec().as_slice()).map_err(|source| SchemaError::Decode {
        message: name,
        source,
    })
}

fn dynamic_to_json(message: &DynamicMessage) -> Result<serde_json::Value, SchemaError> {
    serde_json::to_value(message).map_err(|e| SchemaError::InvalidJson {
        message: message.descriptor().full_name().to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{AppVersion, Environment};

    #[test]
    fn typed_message_round_trips_through_json() {
        let env = Environment {
            env: "pr-ping-42".into(),
            kind: "preview".into(),
            change_id: "ping-v20240101120000-1a2b3c4".into(),
            apps: vec![AppVersion {
                name: "ping".into(),
                version: "v20240101120000-1a2b3c4".into(),
                image: String::new(),
            }],
            pr: 42,
            ..Default::default()
        };
        let json = to_json(&env).expect("renders");
        assert_eq!(json["changeId"], "ping-v20240101120000-1a2b3c4");
        assert_eq!(
            json["pr"], "42",
            "uint64 is a string in the proto3 JSON mapping"
        );
        assert!(json.get("reason").is_none(), "defaults are left out");
        let back: Environment = from_json(json.to_string().as_bytes()).expect("parses");
        assert_eq!(back, env);
    }

    #[test]
    fn snake_case_input_is_accepted() {
        let msg = parse_json(
            "flotilla.v1.Build",
            br#"{"change_id":"a-v1","app":"a","version":"v1"}"#,
            &["change_id"],
        )
        .expect("valid");
        assert_eq!(dynamic_to_json(&msg).expect("json")["changeId"], "a-v1");
    }

    #[test]
    fn unknown_field_is_named_in_the_error() {
        let err = parse_json("flotilla.v1.Build", br#"{"app":"a","colour":"red"}"#, &[])
            .expect_err("unknown field");
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_nested_field_path() {
        let err = parse_json(
            "flotilla.v1.Build",
            br#"{"images":[{"name":"ping"},{"name":7}]}"#,
            &[],
        )
        .expect_err("wrong type");
        let text = err.to_string();
        assert!(text.contains("images[1].name"), "{text}");
    }

    #[test]
    fn missing_required_field_is_named_in_json_spelling() {
        let err = parse_json(
            "flotilla.v1.Build",
            br#"{"app":"a"}"#,
            &["app", "change_id"],
        )
        .expect_err("missing");
        assert!(err.to_string().contains("`changeId`"), "{err}");
    }
}
