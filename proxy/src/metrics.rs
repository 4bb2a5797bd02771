//! TEMPORARY stub; replaced by the helper-metrics branch.
use std::sync::Arc;
use std::time::Duration;

pub struct Metrics;
impl Metrics {
    pub fn new(_lb: &str) -> Arc<Metrics> {
        Arc::new(Metrics)
    }
    pub fn listener(&self, _name: &str) -> ListenerMetrics {
        ListenerMetrics
    }
    pub fn target_group(&self, _name: &str) -> TargetGroupMetrics {
        TargetGroupMetrics
    }
    pub fn target(&self, _group: &str, _target: &str) -> TargetMetrics {
        TargetMetrics
    }
    pub fn record_reload(&self, _ok: bool) {}
    pub fn encode_text(&self) -> String {
        String::new()
    }
}
#[derive(Clone)]
pub struct ListenerMetrics;
impl ListenerMetrics {
    pub fn elb_response(&self, _status: u16) {}
    pub fn request(&self) {}
    pub fn connection_opened(&self) {}
    pub fn connection_closed(&self) {}
    pub fn received_bytes(&self, _n: u64) {}
    pub fn sent_bytes(&self, _n: u64) {}
    pub fn fixed_response(&self) {}
    pub fn redirect(&self) {}
    pub fn redirect_url_limit_exceeded(&self) {}
    pub fn tls_negotiation_error(&self) {}
    pub fn rejected_connection(&self) {}
}
#[derive(Clone)]
pub struct TargetGroupMetrics;
#[derive(Clone)]
pub struct TargetMetrics;
impl TargetMetrics {
    pub fn request(&self) {}
    pub fn observe_response(&self, _status: u16, _elapsed: Duration) {}
    pub fn connection_error(&self) {}
    pub fn connection_opened(&self) {}
    pub fn connection_closed(&self) {}
}
