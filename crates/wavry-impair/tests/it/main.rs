//! The impairment tool in network namespaces (root): forwarding, and RIFT through it.
mod netns_forward;
mod rift_through_impair;
