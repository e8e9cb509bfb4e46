//! The responses percore writes itself when something fails, with HAProxy's status codes
//! and short bodies of our own wording. `errorfile` replaces them per proxy.

/// The reason phrase percore writes for `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        421 => "Misdirected Request",
        425 => "Too Early",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Other",
    }
}

/// The built-in response for `status`, ending with `Connection: close`.
pub fn builtin(status: u16) -> Vec<u8> {
    let text = match status {
        200 => "Service ready.",
        400 => "The request could not be understood.",
        401 => "Authentication is required.",
        403 => "The request is not allowed.",
        404 => "Nothing is served here.",
        405 => "The method is not allowed.",
        408 => "The request did not arrive in time.",
        413 => "The request body is too large.",
        414 => "The request line is too long.",
        429 => "Too many requests.",
        431 => "The request headers are too large.",
        500 => "An internal error occurred.",
        501 => "The request uses a feature that is not implemented.",
        502 => "The server returned an invalid or incomplete response.",
        503 => "No server is available to handle this request.",
        504 => "The server did not respond in time.",
        _ => "An error occurred.",
    };
    let reason = reason(status);
    let body = format!("<html><body><h1>{status} {reason}</h1>\n{text}\n</body></html>\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
