//! `Accrual`: the tower service in front of one instance that applies failure accrual.
//!
//! It is only the glue between tower and the board: `poll_ready` asks the board whether
//! the instance may take a request and, when not, waits on a real timer (the end of the
//! backoff) and on the board's change notification (panic mode, end of a probe), so that
//! the balancer polls it again by itself. Each response future reports its outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::futures::OwnedNotified;
use tokio::time::Sleep;
use tower::Service;

use super::board::{Board, InstanceId};
use super::classify::{Classify, Outcome};
use super::health::{Admit, Ticket};

/// One instance's service, ready only while failure accrual trusts the instance.
pub struct Accrual<S, C> {
    inner: S,
    classify: C,
    board: Arc<Board>,
    id: InstanceId,
    /// Ends the wait for the backoff; kept to reuse its timer entry.
    backoff: Option<Pin<Box<Sleep>>>,
    /// Armed before the board is asked, so a change in between is not missed.
    changed: Option<Pin<Box<OwnedNotified>>>,
}

impl<S, C> Accrual<S, C> {
    /// Judges `inner` by the record `id` on `board` (the instance's listing keeps it there).
    pub(crate) fn new(inner: S, classify: C, board: Arc<Board>, id: InstanceId) -> Self {
        Self {
            inner,
            classify,
            board,
            id,
            backoff: None,
            changed: None,
        }
    }
}

impl<S, C, Req> Service<Req> for Accrual<S, C>
where
    S: Service<Req>,
    C: Classify<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AccrualFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The common case, without arming the board's notification: that one is shared
        // by every instance of every balancer on the board, and arming takes its lock.
        if self.board.admit(self.id, Instant::now()) == Admit::Ready {
            return self.inner.poll_ready(cx);
        }
        loop {
            let changed = self
                .changed
                .get_or_insert_with(|| Box::pin(self.board.changed().notified_owned()));
            changed.as_mut().enable();
            let wake_at = match self.board.admit(self.id, Instant::now()) {
                Admit::Ready => break,
                Admit::NotUntil(until) => Some(until),
                Admit::AwaitProbe => None,
            };
            if changed.as_mut().poll(cx).is_ready() {
                self.changed = None;
                continue;
            }
            if let Some(until) = wake_at {
                let until = tokio::time::Instant::from_std(until);
                let sleep = match &mut self.backoff {
                    Some(sleep) => {
                        sleep.as_mut().reset(until);
                        sleep
                    }
                    none => none.insert(Box::pin(tokio::time::sleep_until(until))),
                };
                if sleep.as_mut().poll(cx).is_ready() {
                    continue;
                }
            }
            return Poll::Pending;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let report = self.board.start(self.id).map(|ticket| Report {
            board: self.board.clone(),
            id: self.id,
            ticket,
            recorded: false,
        });
        AccrualFuture {
            inner: self.inner.call(request),
            classify: self.classify.clone(),
            report,
        }
    }
}

/// Reports a request's outcome to the board exactly once.
struct Report {
    board: Arc<Board>,
    id: InstanceId,
    ticket: Ticket,
    recorded: bool,
}

impl Report {
    fn record(&mut self, outcome: Outcome) {
        if !self.recorded {
            self.recorded = true;
            self.board
                .record(self.id, self.ticket, outcome, Instant::now());
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        // Dropped unanswered: the attempt timed out (or the caller gave up). Count it as a
        // failure, which also frees the probe slot if this was the probe.
        self.record(Outcome::Failure);
    }
}

pin_project_lite::pin_project! {
    /// The response of an [`Accrual`] service; reports the outcome when it resolves or drops.
    pub struct AccrualFuture<F, C> {
        #[pin]
        inner: F,
        classify: C,
        report: Option<Report>,
    }
}

impl<F, C, Res, E> Future for AccrualFuture<F, C>
where
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E>,
{
    type Output = Result<Res, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let outcome = match &result {
            Ok(response) => this.classify.response(response),
            Err(error) => this.classify.error(error),
        };
        if let Some(report) = this.report.as_mut() {
            report.record(outcome);
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use tower::BoxError;

    use super::*;
    use crate::balance::board::HealthState;
    use crate::balance::classify::ErrorsOnly;
    use crate::balance::config::AccrualConfig;

    type Failing = tower::util::ServiceFn<fn(()) -> std::future::Ready<Result<(), BoxError>>>;

    fn failing() -> Failing {
        tower::service_fn(|()| std::future::ready(Err("down".into())))
    }

    fn board(backoff: Duration) -> Arc<Board> {
        let mut accrual = AccrualConfig::default();
        accrual.backoff.initial = backoff;
        accrual.backoff.max = backoff;
        Arc::new(Board::new(accrual, 0.5))
    }

    async fn eject(service: &mut Accrual<Failing, ErrorsOnly>) {
        for _ in 0..5 {
            poll_fn(|cx| service.poll_ready(cx)).await.expect("ready");
            assert!(service.call(()).await.is_err());
        }
    }

    fn is_ready(service: &mut Accrual<Failing, ErrorsOnly>) -> bool {
        let waker = std::task::Waker::noop();
        service
            .poll_ready(&mut Context::from_waker(waker))
            .is_ready()
    }

    #[tokio::test]
    async fn an_ejected_instance_wakes_the_balancer_when_its_backoff_ends() {
        let board = board(Duration::from_millis(50));
        let service_listed = board.list("a".into());
        let mut service = Accrual::new(failing(), ErrorsOnly, board.clone(), service_listed.id());
        let trusted_listed = board.list("b".into());
        let _trusted = Accrual::new(failing(), ErrorsOnly, board.clone(), trusted_listed.id());
        eject(&mut service).await;
        assert!(!is_ready(&mut service), "ejected, not ready");
        // Only the timer can wake this: nothing else happens on the board.
        let ready =
            tokio::time::timeout(Duration::from_secs(2), poll_fn(|cx| service.poll_ready(cx)))
                .await;
        assert!(matches!(ready, Ok(Ok(()))), "probation never came");
        // The probe is taken; nobody else may go until it ends.
        let probe = service.call(());
        assert!(!is_ready(&mut service), "a second probe must wait");
        assert!(probe.await.is_err());
        assert!(!is_ready(&mut service), "a failed probe ejects again");
    }

    #[tokio::test]
    async fn panic_mode_wakes_ejected_instances() {
        let board = board(Duration::from_secs(30));
        let a_listed = board.list("a".into());
        let mut a = Accrual::new(failing(), ErrorsOnly, board.clone(), a_listed.id());
        let b_listed = board.list("b".into());
        let mut b = Accrual::new(failing(), ErrorsOnly, board.clone(), b_listed.id());
        let c_listed = board.list("c".into());
        let _c = Accrual::new(failing(), ErrorsOnly, board.clone(), c_listed.id());
        eject(&mut a).await;
        let waiting = tokio::spawn(async move {
            poll_fn(|cx| a.poll_ready(cx)).await.expect("ready");
        });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "1 of 3 ejected: a waits out its 30 s backoff"
        );
        eject(&mut b).await;
        assert!(board.is_panicking());
        let woken = tokio::time::timeout(Duration::from_secs(2), waiting).await;
        assert!(matches!(woken, Ok(Ok(()))), "panic mode did not wake a");
    }

    #[tokio::test]
    async fn a_dropped_probe_counts_as_failed_and_frees_the_slot() {
        let board = board(Duration::from_millis(20));
        let service_listed = board.list("a".into());
        let mut service = Accrual::new(failing(), ErrorsOnly, board.clone(), service_listed.id());
        let trusted_listed = board.list("b".into());
        let _trusted = Accrual::new(failing(), ErrorsOnly, board.clone(), trusted_listed.id());
        eject(&mut service).await;
        let ready =
            tokio::time::timeout(Duration::from_secs(2), poll_fn(|cx| service.poll_ready(cx)))
                .await;
        assert!(matches!(ready, Ok(Ok(()))), "probation never came");
        // The attempt timeout drops the probe's future unanswered.
        drop(service.call(()));
        let states = board.snapshot();
        assert!(
            matches!(states[0].health, HealthState::Ejected { .. }),
            "{states:?}"
        );
        assert_eq!(states[0].ejections, 2);
    }
}
