use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpStream;

use super::*;

const GRACE: Duration = Duration::from_secs(5);

fn listener(name: &str) -> String {
    format!(
        "[[listeners]]\nname = \"{name}\"\naddress = \"127.0.0.1:0\"\n\n  [[listeners.routes]]\n  pool = \"main\"\n\n"
    )
}

fn write_config(path: &Path, listeners: &[&str]) {
    let mut text: String = listeners.iter().map(|name| listener(name)).collect();
    text.push_str(
        "[pools.main]\nbalancer = \"builtin:round-robin\"\nbackends = [{ address = \"127.0.0.1:9001\" }]\n",
    );
    std::fs::write(path, text).unwrap();
}

async fn accepts(address: SocketAddr) -> bool {
    TcpStream::connect(address).await.is_ok()
}

async fn started(dir: &Path) -> (ServerHandle, ControlTask, SocketAddr) {
    let path = dir.join("bascule.toml");
    write_config(&path, &["web"]);
    let server = Server::start(&Config::load(&path).unwrap()).await.unwrap();
    let web = server.listeners()[0].address;
    let (handle, task) = ServerHandle::spawn(server, path);
    (handle, task, web)
}

#[tokio::test]
async fn a_rejected_reload_reports_why_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, task, web) = started(dir.path()).await;
    std::fs::write(dir.path().join("bascule.toml"), "[[listeners]]\nnme = 1\n").unwrap();

    let error = handle.reload().await.unwrap_err();
    assert!(matches!(error, ReloadError::Load(_)), "{error:?}");
    assert!(
        crate::error_chain(&error).contains("bascule.toml"),
        "the error names the file: {}",
        crate::error_chain(&error)
    );
    assert!(accepts(web).await, "the old listener stopped serving");

    assert!(handle.shutdown(GRACE).await);
    task.finished().await;
}

#[tokio::test]
async fn reloads_from_several_handles_apply_one_at_a_time_and_report_what_they_added() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, task, web) = started(dir.path()).await;
    write_config(&dir.path().join("bascule.toml"), &["web", "extra"]);

    let other = handle.clone();
    let (first, second) = tokio::join!(handle.reload(), other.reload());
    let (first, second) = (first.unwrap(), second.unwrap());
    let mut generations = [first.generation, second.generation];
    generations.sort_unstable();
    assert_eq!(generations, [2, 3], "each reload is its own generation");
    let added: Vec<ListenerInfo> = first.added.into_iter().chain(second.added).collect();
    assert_eq!(
        added.len(),
        1,
        "only the first reload adds `extra`: {added:?}"
    );
    assert_eq!(&*added[0].name, "extra");
    assert_eq!(added[0].scheme, "http");
    assert!(accepts(added[0].address).await, "the added listener serves");
    assert!(accepts(web).await, "the kept listener serves");

    assert!(handle.shutdown(GRACE).await);
    task.finished().await;
}

#[tokio::test]
async fn after_shutdown_listeners_are_closed_and_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, task, web) = started(dir.path()).await;

    assert!(handle.shutdown(GRACE).await);
    task.finished().await;
    assert!(!accepts(web).await, "the listener still accepts");
    let error = handle.reload().await.unwrap_err();
    assert!(matches!(error, ReloadError::Stopped), "{error:?}");
}
