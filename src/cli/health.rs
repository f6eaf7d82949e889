//! `glm-proxy health`: asks the running proxy's `GET /health`, for a container's `HEALTHCHECK`
//! without curl in the image. It reads `HOST` and `PORT` as the proxy does, so a `PORT` set in
//! `.env` is the port checked; a wildcard `HOST` (`0.0.0.0`, `::`) is asked on loopback.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::config::Config;

#[derive(Args)]
pub struct HealthArgs {
    /// Seconds to wait for the answer before calling the proxy unhealthy.
    #[arg(long, default_value_t = 3.0)]
    timeout: f64,
}

/// Exit 0 when the proxy answers 200, 1 when it does not (or not in time), 2 on bad `HOST`/`PORT`.
pub fn run(args: HealthArgs) -> ExitCode {
    let (host, port) = match Config::listen_address_from_env() {
        Ok(address) => address,
        Err(problem) => {
            eprintln!("glm-proxy health: {problem}");
            return ExitCode::from(2);
        }
    };
    let Some(timeout) = Duration::try_from_secs_f64(args.timeout).ok().filter(|t| !t.is_zero()) else {
        eprintln!("glm-proxy health: --timeout must be a positive number of seconds");
        return ExitCode::from(2);
    };
    match check(&host, port, timeout) {
        Ok(()) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("glm-proxy health: http://{host}:{port}/health: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn check(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let address = address(host, port)?;
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    // The status line is all that is needed; the answer is small and the connection closes.
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).map_err(|e| e.to_string())?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status_line = status_line.lines().next().unwrap_or_default();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(status) => Err(format!("answered {status}")),
        None => Err("no HTTP answer".to_owned()),
    }
}

/// Where the proxy can be reached: loopback for a wildcard listen address.
fn address(host: &str, port: u16) -> Result<SocketAddr, String> {
    let ip = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) if ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Ok(ip) if ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        Ok(ip) => ip,
        Err(_) => {
            let mut found = (host, port).to_socket_addrs().map_err(|e| format!("HOST {host:?}: {e}"))?;
            return found.next().ok_or_else(|| format!("HOST {host:?} has no address"));
        }
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_checked_on_loopback() {
        assert_eq!(address("0.0.0.0", 80), Ok("127.0.0.1:80".parse().unwrap()));
        assert_eq!(address("::", 80), Ok("[::1]:80".parse().unwrap()));
        assert_eq!(address("[::]", 80), Ok("[::1]:80".parse().unwrap()));
        assert_eq!(address("10.1.2.3", 81), Ok("10.1.2.3:81".parse().unwrap()));
    }
}
