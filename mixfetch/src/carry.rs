//! A [`Fetcher`]'s byte streams carried by the core's exit streams: the one place
//! this glue lives. The browser's layer (`browser.rs`) and the simulator tests
//! (`tests/sim.rs`) both run [`pump`]; the native client would too.

use mixnet_core::address::Recipient;
use mixnet_core::stream::{StreamEvent, StreamsMut};
use rand_core::CryptoRng;

use crate::fetch::{Action, FetchEvent, Fetcher};

/// Moves the fetcher's actions to `streams` (through `exit`) and the streams' events
/// to the fetcher until neither has anything left, handing each fetch event to
/// `out`. Returns whether anything moved.
pub fn pump<R: CryptoRng>(
    fetcher: &mut Fetcher,
    streams: &mut StreamsMut<'_, R>,
    exit: Recipient,
    mut out: impl FnMut(FetchEvent),
) -> bool {
    let now = streams.now();
    let mut any = false;
    loop {
        let mut progressed = false;
        while let Some(a) = fetcher.poll_action() {
            progressed = true;
            match a {
                Action::Open { conn, host, port } => {
                    if let Err(e) = streams.open(exit, &host, port, conn) {
                        fetcher.handle_open_failed(now, conn, &e.to_string());
                    }
                }
                Action::Write { conn, data } => {
                    if let Err(e) = streams.write(conn, &data) {
                        fetcher.handle_closed(now, conn, Some(&e.to_string()));
                    }
                }
                // the fetcher is done with it: the exit may drop the connection
                Action::Close { conn } => {
                    let _ = streams.reset(conn, "closed by the client");
                }
            }
        }
        while let Some(e) = streams.poll_event() {
            progressed = true;
            match e {
                StreamEvent::Opened(id) => fetcher.handle_opened(now, id),
                StreamEvent::OpenFailed(id, e) => fetcher.handle_open_failed(now, id, &e.reason),
                StreamEvent::Data(id, data) => fetcher.handle_data(now, id, &data),
                StreamEvent::Closed(id, error) => fetcher.handle_closed(now, id, error.as_deref()),
            }
        }
        while let Some(e) = fetcher.poll_event() {
            progressed = true;
            out(e);
        }
        if !progressed {
            return any;
        }
        any = true;
    }
}
