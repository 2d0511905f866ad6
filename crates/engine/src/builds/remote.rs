//! What a build fetches over HTTP: `ADD http(s)://…` files ([`download`]) and remote contexts
//! ([`BodyReader`], read by the build thread as it reads an uploaded context). Both go through the
//! registry crate's plain GET ([`registry::Client::get_url`]): redirects followed, certificates
//! verified, a status of 400 and more worded as dockerd (`failed to GET <url> with status 404 Not
//! Found: <body>`).

use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

use build::backend::BackendError;

use super::BuildCancel;

/// Fetches `url` into the new file `to` with mode 0600 and, when the answer has `Last-Modified`,
/// that modification time (dockerd's classic builder does both; the file's tarsum, the step's
/// cache key, is of the content and mode alone). Blocking, on the build's thread; a cancel stops
/// the transfer.
pub(super) fn download(
    client: &registry::Client,
    rt: &tokio::runtime::Handle,
    cancel: &BuildCancel,
    url: &str,
    to: &Path,
) -> Result<(), BackendError> {
    let fail =
        |e: io::Error| BackendError::Other(format!("ADD {url}: writing {}: {e}", to.display()));
    let fetch = async {
        let mut resp = client
            .get_url(url)
            .await
            .map_err(|e| BackendError::Other(e.to_string()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(fail)?;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| BackendError::Other(e.to_string()))?
        {
            file.write_all(&chunk).map_err(fail)?;
        }
        // The umask may have taken bits off; dockerd's file is 0600 exactly.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
        if let Some(t) = resp.header("last-modified").and_then(parse_http_date) {
            file.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
                .map_err(fail)?;
        }
        Ok(())
    };
    rt.block_on(async {
        tokio::select! {
            r = fetch => r,
            () = cancel.cancelled() => Err(BackendError::Cancelled),
        }
    })
}

/// An HTTP date (`Last-Modified`): RFC 1123 as servers send it (`Wed, 21 Oct 2015 07:28:00 GMT`).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc2822(s.trim()).ok()?;
    Some(SystemTime::from(t.with_timezone(&chrono::Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_modified_dates_parse_as_servers_send_them() {
        let t = parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT");
        let want = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_445_412_480);
        assert_eq!(t, Some(want));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
