//! Keywords of `peers` sections. Parsed and validated now; the stick-table work runs them.

use crate::error::Location;
use crate::model::{Peer, Peers};
use crate::planned::unsupported;

/// An empty `peers` section.
pub fn new(name: String, location: &Location) -> Peers {
    Peers {
        name,
        peers: Vec::new(),
        location: location.clone(),
    }
}

/// Applies one line of a `peers` section.
pub fn keyword(p: &mut Peers, words: &[String]) -> Result<(), String> {
    match words[0].as_str() {
        "peer" => {
            p.peers.push(host_entry("peer", &words[1..])?);
            Ok(())
        }
        kw => Err(unsupported(kw, "peers")),
    }
}

/// Parses `NAME HOST:PORT` as used by `peer` and `nameserver`.
pub fn host_entry(kw: &str, args: &[String]) -> Result<Peer, String> {
    let [name, addr] = args else {
        return Err(format!("'{kw}' expects a name and HOST:PORT"));
    };
    crate::parser::check_name(name)?;
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("'{kw} {name}': '{addr}' needs a port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("'{kw} {name}': invalid port in '{addr}'"))?;
    Ok(Peer {
        name: name.clone(),
        host: host.trim_matches(['[', ']']).to_string(),
        port,
    })
}
