//! What the stories share: the server in process and its client, and the real things around it.
//!
//! - [`app`]: `TestApp`, authd in this process on 127.0.0.1:0 with a fresh data directory, and
//!   the client calls every story makes (register, login, a signed-in user, an admin).
//! - [`ports`]: `free_port`, and fakes (poem endpoints) served on a loopback port.

mod app;
mod ports;

pub use app::{
    PASSWORD, TEST_DATA_KEY, TestApp, Tokens, assert_problem, call, client_from, postgres_db, private_dir, test_config,
    use_postgres,
};
pub use ports::{free_port, serve_fake};
