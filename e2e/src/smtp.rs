//! A minimal SMTP server that keeps what it receives: the welcome email goes through a real
//! SMTP conversation (the controller's `lettre` client on one side), and tests read the mail.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    sync::watch,
};

/// One received message.
#[derive(Clone, Debug)]
pub struct Mail {
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The DATA part (headers and body).
    pub data: String,
}

/// A running sink.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:PORT`.
    pub url: String,
    mails: Arc<Mutex<Vec<Mail>>>,
    data_started: watch::Sender<u32>,
}

/// How the sink answers the end of a message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `250 queued`: the message is kept.
    Accept,
    /// Never answers once the message has been sent (a server that hangs), so the sender is
    /// left waiting after the email may have gone out.
    Stall,
}

impl SmtpSink {
    /// Starts listening on a free loopback port; messages are accepted and kept.
    pub async fn start() -> Self {
        Self::start_mode(Mode::Accept).await
    }

    /// A sink that takes the message but never answers after it (see [`Mode::Stall`]).
    pub async fn stalling() -> Self {
        Self::start_mode(Mode::Stall).await
    }

    async fn start_mode(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let data_started = watch::Sender::new(0u32);
        let store = mails.clone();
        let started = data_started.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let store = store.clone();
                let started = started.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                    let mut mail = Mail {
                        to: vec![],
                        data: String::new(),
                    };
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") {
                            b"250-sink\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            mail.to
                                .push(line[8..].trim().trim_matches(['<', '>']).to_string());
                            b"250 OK\r\n"
                        } else if upper == "DATA" {
                            started.send_modify(|n| *n += 1);
                            let _ = w.write_all(b"354 go on\r\n").await;
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                mail.data.push_str(&l);
                                mail.data.push('\n');
                            }
                            if mode == Mode::Stall {
                                // Hold the connection open without a word.
                                std::future::pending::<()>().await;
                            }
                            store.lock().unwrap().push(std::mem::replace(
                                &mut mail,
                                Mail {
                                    to: vec![],
                                    data: String::new(),
                                },
                            ));
                            b"250 queued\r\n"
                        } else if upper == "QUIT" {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 OK\r\n"
                        };
                        if w.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self {
            url,
            mails,
            data_started,
        }
    }

    /// How many messages senders began to transmit (`DATA` commands), kept or not.
    pub fn data_started(&self) -> u32 {
        *self.data_started.borrow()
    }

    /// Waits until senders have begun to transmit at least `n` messages.
    pub async fn wait_data_started(&self, n: u32, timeout: Duration) -> anyhow::Result<()> {
        let mut rx = self.data_started.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|&c| c >= n))
            .await
            .map_err(|_| anyhow::anyhow!("no sender began message {n} within {timeout:?}"))?
            .map_err(|_| anyhow::anyhow!("the sink stopped"))?;
        Ok(())
    }

    /// Everything received so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}
