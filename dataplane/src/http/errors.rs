//! The responses percore writes itself when something fails, with HAProxy's status codes
//! and short bodies of our own wording. `errorfile` replaces them per proxy.

/// The built-in response for `status`, ending with `Connection: close`.
pub fn builtin(status: u16) -> Vec<u8> {
    let (reason, text) = match status {
        200 => ("OK", "Service ready."),
        400 => ("Bad Request", "The request could not be understood."),
        401 => ("Unauthorized", "Authentication is required."),
        403 => ("Forbidden", "The request is not allowed."),
        404 => ("Not Found", "Nothing is served here."),
        405 => ("Method Not Allowed", "The method is not allowed."),
        408 => ("Request Timeout", "The request did not arrive in time."),
        413 => ("Payload Too Large", "The request body is too large."),
        414 => ("URI Too Long", "The request line is too long."),
        429 => ("Too Many Requests", "Too many requests."),
        431 => (
            "Request Header Fields Too Large",
            "The request headers are too large.",
        ),
        500 => ("Internal Server Error", "An internal error occurred."),
        501 => (
            "Not Implemented",
            "The request uses a feature that is not implemented.",
        ),
        502 => (
            "Bad Gateway",
            "The server returned an invalid or incomplete response.",
        ),
        503 => (
            "Service Unavailable",
            "No server is available to handle this request.",
        ),
        504 => ("Gateway Timeout", "The server did not respond in time."),
        _ => ("Error", "An error occurred."),
    };
    let body = format!("<html><body><h1>{status} {reason}</h1>\n{text}\n</body></html>\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
