//! Reading the files a configuration names (error pages, pattern and map files, reply
//! bodies): only regular files, and never more than a bound, so that a line naming
//! `/dev/zero` or a huge file is refused with its line instead of filling memory.

use std::io::Read;

/// The largest error page or reply file read (pages must also fit `tune.bufsize`).
pub const PAGE_LIMIT: u64 = 1 << 30;
/// The largest pattern or map file read.
pub const LIST_LIMIT: u64 = 1 << 30;
/// The largest configuration file read.
pub const CONFIG_LIMIT: u64 = 64 << 20;

/// Reads at most `limit` bytes of `file`, refusing anything but a regular file and a
/// file that holds more.
pub fn read_regular(file: &str, limit: u64) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(file).map_err(|e| format!("cannot read '{file}': {e}"))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read '{file}': {e}"))?;
    if !meta.is_file() {
        return Err(format!("'{file}' is not a regular file"));
    }
    read_bounded(f, file, limit)
}

/// Reads at most `limit` bytes from `from` (named `name` in messages), refusing more.
pub fn read_bounded(from: impl Read, name: &str, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    from.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read '{name}': {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("'{name}' is larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// Checks that an error page read at load fits in one buffer, as HAProxy requires.
pub fn page_fits(page: &[u8], bufsize: usize) -> Result<(), String> {
    if page.len() > bufsize {
        return Err(format!(
            "the error page is {} bytes, larger than tune.bufsize ({bufsize})",
            page.len()
        ));
    }
    Ok(())
}
