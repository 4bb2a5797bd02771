//! TEMPORARY stub; replaced by the helper-routing branch.
use std::net::IpAddr;

/// What rule conditions look at.
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub peer_ip: IpAddr,
}
