//! Keywords of `resolvers` sections. Parsed and validated now; the DNS work runs them.

use crate::error::Location;
use crate::global::one;
use crate::model::{HoldStatus, Resolvers};
use crate::peers::host_entry;
use crate::planned::unsupported;
use crate::units::{parse_size, parse_time, parse_uint};
use std::time::Duration;

/// A `resolvers` section with HAProxy's defaults.
pub fn new(name: String, location: &Location) -> Resolvers {
    Resolvers {
        name,
        nameservers: Vec::new(),
        resolve_retries: 3,
        timeout_resolve: Duration::from_secs(1),
        timeout_retry: Duration::from_secs(1),
        hold: Vec::new(),
        accepted_payload_size: 512,
        parse_resolv_conf: false,
        location: location.clone(),
    }
}

/// Applies one line of a `resolvers` section.
pub fn keyword(r: &mut Resolvers, words: &[String]) -> Result<(), String> {
    let kw = words[0].as_str();
    let args = &words[1..];
    match kw {
        "nameserver" => r.nameservers.push(host_entry(kw, args)?),
        "resolve_retries" => r.resolve_retries = parse_uint(kw, one(kw, args)?)?,
        "parse-resolv-conf" => r.parse_resolv_conf = true,
        "accepted_payload_size" => {
            let size = parse_size(one(kw, args)?)?;
            if !(512..=65535).contains(&size) {
                return Err(format!(
                    "'accepted_payload_size' must be between 512 and 65535, got {size}"
                ));
            }
            r.accepted_payload_size = size as u32;
        }
        "timeout" => match args {
            [w, v] if w == "resolve" => r.timeout_resolve = parse_time(v)?,
            [w, v] if w == "retry" => r.timeout_retry = parse_time(v)?,
            _ => return Err("'timeout' expects 'resolve' or 'retry' and a time".into()),
        },
        "hold" => {
            let [status, period] = args else {
                return Err("'hold' expects a status and a period".into());
            };
            let status = match status.as_str() {
                "nx" => HoldStatus::Nx,
                "other" => HoldStatus::Other,
                "refused" => HoldStatus::Refused,
                "timeout" => HoldStatus::Timeout,
                "valid" => HoldStatus::Valid,
                "obsolete" => HoldStatus::Obsolete,
                other => return Err(format!("'hold': unknown status '{other}'")),
            };
            r.hold.push((status, parse_time(period)?));
        }
        _ => return Err(unsupported(kw, "resolvers")),
    }
    Ok(())
}
