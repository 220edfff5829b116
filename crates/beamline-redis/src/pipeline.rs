//! Pipelines: many commands at once, each to its slot's node, answered in the caller's
//! order.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use beamline_resp::{Command, Value};
use futures::future::{join_all, poll_fn};

use crate::{ClusterClient, ClusterError};

impl ClusterClient {
    /// Sends `commands` as one pipeline: every command goes to its slot's node at once, the
    /// commands for one node written back to back on its connection, and the answers come
    /// back in the caller's order, one per command.
    ///
    /// Each command is its own request, with the guarantees of [`call`](Self::call): it is
    /// routed, split or refused on its own (a `CrossSlot` command fails alone; the others
    /// are still sent), follows its own redirects, and ends by the client's
    /// [`timeout`](crate::ClusterBuilder::timeout) with its own answer or a typed error.
    ///
    /// # Order
    /// Commands for the same primary are written in the caller's order (the pipeline first
    /// makes sure it has a connection to every primary, then hands the commands to their
    /// nodes' connections one after another), so `SET k 1` then `INCR k` in one pipeline
    /// answers `2`. A command that is redirected (`MOVED`, `ASK`) or retried
    /// (`TRYAGAIN`, a lost connection) is sent again later and may run after commands that
    /// came after it; commands for different nodes run in no set order, as in any Redis
    /// Cluster pipeline. Use a hash tag to keep commands that depend on each other on one
    /// node, and check each answer.
    pub async fn pipeline<I>(&self, commands: I) -> Vec<Result<Value, ClusterError>>
    where
        I: IntoIterator<Item = Command>,
    {
        self.pipelined(commands, false).await
    }

    /// As [`pipeline`](Self::pipeline), for commands you declare safe to apply twice (see
    /// [`call_idempotent`](Self::call_idempotent)): one whose connection is lost after it
    /// was written is sent again.
    pub async fn pipeline_idempotent<I>(&self, commands: I) -> Vec<Result<Value, ClusterError>>
    where
        I: IntoIterator<Item = Command>,
    {
        self.pipelined(commands, true).await
    }

    async fn pipelined<I>(&self, commands: I, idempotent: bool) -> Vec<Result<Value, ClusterError>>
    where
        I: IntoIterator<Item = Command>,
    {
        // A command's first poll takes its place in its node's line, unless the node's
        // connection is still being made: make every primary's first, so the order of the
        // first polls below is the order on each connection. (A node that cannot be reached
        // now is each of its commands' error to report.)
        self.inner.connect_primaries(&self.inner.map()).await;

        let mut calls: Vec<Pin<Box<_>>> = commands
            .into_iter()
            .map(|command| Box::pin(self.request(command, idempotent)))
            .collect();
        // Each command's first poll, in the caller's order (a command refused before
        // sending is answered right there).
        let mut first = Vec::with_capacity(calls.len());
        poll_fn(|cx| {
            first.extend(calls.iter_mut().map(|call| call.as_mut().poll(cx)));
            Poll::Ready(())
        })
        .await;
        join_all(
            calls
                .into_iter()
                .zip(first)
                .map(|(call, first)| async move {
                    match first {
                        Poll::Ready(answer) => answer,
                        Poll::Pending => call.await,
                    }
                }),
        )
        .await
    }
}
