//! TEMPORARY stub; replaced by the helper-routing branch.
use bytes::Bytes;
use http::HeaderValue;

pub struct CompiledForward {
    pub target_group: usize,
}
pub struct ForwardChoice {
    pub target_group: usize,
    pub set_cookies: Vec<HeaderValue>,
}
impl CompiledForward {
    pub fn choose<'a>(
        &self,
        _cookies: impl Iterator<Item = &'a HeaderValue>,
        _random: u32,
    ) -> ForwardChoice {
        ForwardChoice {
            target_group: self.target_group,
            set_cookies: Vec::new(),
        }
    }
}
pub struct RedirectRequest<'a> {
    pub protocol: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub path: &'a str,
    pub query: Option<&'a str>,
}
#[derive(Debug)]
pub enum RedirectError {
    UrlLimitExceeded,
}
pub struct CompiledRedirect {
    pub status: http::StatusCode,
}
impl CompiledRedirect {
    pub fn location(&self, _r: &RedirectRequest<'_>) -> Result<HeaderValue, RedirectError> {
        Err(RedirectError::UrlLimitExceeded)
    }
}
pub struct CompiledFixedResponse {
    pub status: http::StatusCode,
    pub content_type: HeaderValue,
    pub body: Bytes,
}
