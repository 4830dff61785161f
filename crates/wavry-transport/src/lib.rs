//! RIFT transport: sessions (handshake, connection ids, protection, the rift-core connection)
//! driven over one UDP socket per endpoint.

pub mod session;
pub mod udp;
