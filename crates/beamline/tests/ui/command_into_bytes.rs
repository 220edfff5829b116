// The "forgot `.resp()`" mistake: a Redis command given to a client of beamline's wire
// format. It must not compile, not even with the `.into()` a compiler hint would suggest.
use beamline::Client;
use beamline::resp::Command;
use bytes::Bytes;

async fn forgot_resp(client: Client<Bytes, Bytes>) {
    let _ = client.call(Command::new("GET").arg("k").into()).await;
}

fn main() {}
