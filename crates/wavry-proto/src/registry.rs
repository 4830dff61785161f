//! The gateway's HTTP device registry (docs/SIGNALING.md): devices register their RIFT public
//! key under an account, owners share hosts with other accounts, clients list the hosts they
//! may connect to, and anyone fetches the key the gateway signs host records with.
//!
//! Same conventions as `account`: requests refuse unknown fields, responses tolerate them,
//! times are Unix seconds.

use serde::{Deserialize, Serialize};

/// Longest device name, in bytes.
pub const DEVICE_NAME_MAX_BYTES: usize = 64;

/// What a device does in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Shares its screen; goes online over the signaling WebSocket and takes connect requests.
    Host,
    /// Connects to hosts.
    Client,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Host => "host",
            DeviceKind::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "host" => Some(DeviceKind::Host),
            "client" => Some(DeviceKind::Client),
            _ => None,
        }
    }
}

/// `POST /v1/devices`: register a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterDeviceRequest {
    /// What its owner calls it (1–64 bytes, no control characters).
    pub name: String,
    pub kind: DeviceKind,
    /// The device's static X25519 RIFT key (`wavry id --public`): standard padded base64 of
    /// 32 bytes.
    pub public_key: String,
}

/// A registered device, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceInfo {
    pub device_id: String,
    pub name: String,
    pub kind: DeviceKind,
    pub public_key: String,
    /// `ABCD-EFGH-IJKL-MNOP`, as `wavry id` prints it.
    pub fingerprint: String,
    pub created_at: i64,
}

/// `GET /v1/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceList {
    pub devices: Vec<DeviceInfo>,
}

/// One host a client may connect to (`GET /v1/hosts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostInfo {
    pub host_id: String,
    pub name: String,
    pub fingerprint: String,
    /// The owner's email address.
    pub owner: String,
    /// Whether the host is yours (else it is shared with you).
    pub owned: bool,
    /// Connected to the gateway's signaling now.
    pub online: bool,
    /// When it was last seen online, if ever.
    pub last_seen: Option<i64>,
}

/// `GET /v1/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostList {
    pub hosts: Vec<HostInfo>,
}

/// `POST /v1/devices/{host_id}/shares`: let another account connect to one of your hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    pub email: String,
}

/// An account a host is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareInfo {
    pub user_id: String,
    pub email: String,
    pub created_at: i64,
}

/// `GET /v1/devices/{host_id}/shares`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareList {
    pub shares: Vec<ShareInfo>,
}

/// `GET /v1/gateway/signing-key`: the Ed25519 key host records are signed with. Clients pin
/// it (configuration, or trust on first use) and check every record against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigningKeyInfo {
    /// Always "ed25519".
    pub algorithm: String,
    /// Unpadded base64url of the 32-byte public key.
    pub public_key: String,
    pub key_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_kind_spelling() {
        let r: RegisterDeviceRequest =
            serde_json::from_str(r#"{"name":"den","kind":"host","public_key":"x"}"#).unwrap();
        assert_eq!(r.kind, DeviceKind::Host);
        assert!(serde_json::from_str::<RegisterDeviceRequest>(
            r#"{"name":"den","kind":"server","public_key":"x"}"#
        )
        .is_err());
        for k in [DeviceKind::Host, DeviceKind::Client] {
            assert_eq!(DeviceKind::parse(k.as_str()), Some(k));
        }
    }
}
