use super::*;

/// These tests queue plain frames.
type Outbox = super::Outbox<Frame>;

/// The grace of these tests' outboxes: short, the tests wait it out.
const GRACE: Duration = Duration::from_millis(50);

fn frame(text: &str) -> Frame {
    Frame::from(text.to_owned())
}

/// An outbox of `messages` whose socket does not drain and whose wait ran out: the
/// bounds apply at once, whatever the policy.
fn stalled(messages: usize) -> Outbox {
    stalled_bounds(Bounds {
        messages,
        bytes: usize::MAX,
        grace: GRACE,
    })
}

fn stalled_bounds(bounds: Bounds) -> Outbox {
    let outbox = Outbox::new(bounds);
    outbox.set_socket_blocked(true);
    outbox.starve();
    outbox
}

fn drain(outbox: &Outbox) -> Vec<String> {
    let mut out = Vec::new();
    outbox.take(&mut out, usize::MAX);
    out.iter().map(|o| o.item.as_str().to_owned()).collect()
}

#[test]
fn disconnect_policy_closes_on_overflow() {
    let outbox = stalled(2);
    for text in ["a", "b"] {
        assert_eq!(
            outbox.push_message(&frame(text), 0, 0, 0, SlowClientPolicy::Disconnect),
            Pushed::Queued
        );
    }
    assert_eq!(
        outbox.push_message(&frame("c"), 0, 0, 0, SlowClientPolicy::Disconnect),
        Pushed::Overflow
    );
    assert_eq!(outbox.closing().map(Close::code), Some(4001));
    assert_eq!(
        outbox.push_message(&frame("d"), 0, 0, 0, SlowClientPolicy::Disconnect),
        Pushed::Closed
    );
    assert!(
        drain(&outbox).is_empty(),
        "queued frames are discarded on overflow"
    );
}

#[test]
fn drop_oldest_keeps_the_newest() {
    let outbox = stalled(2);
    for text in ["a", "b", "c"] {
        outbox.push_message(&frame(text), 0, 0, 0, SlowClientPolicy::DropOldest);
    }
    assert_eq!(drain(&outbox), ["b", "c"]);
    assert_eq!(outbox.closing(), None);
}

#[test]
fn drop_oldest_only_touches_its_own_channel() {
    let outbox = stalled(1);
    outbox.push_message(&frame("a"), 0, 0, 0, SlowClientPolicy::Disconnect);
    assert_eq!(
        outbox.push_message(&frame("b"), 1, 0, 0, SlowClientPolicy::DropOldest),
        Pushed::Dropped
    );
    assert_eq!(drain(&outbox), ["a"]);
}

#[test]
fn latest_per_key_keeps_only_the_newest_of_a_key() {
    let outbox = stalled(3);
    let push =
        |name, key| outbox.push_message(&frame(name), 0, key, 0, SlowClientPolicy::LatestPerKey);
    push("k1-a", 1);
    push("k2-a", 2);
    push("k1-b", 1);
    // Full: both queued k1 messages go, the newest joins the tail.
    assert_eq!(push("k1-c", 1), Pushed::QueuedWithDrop);
    push("k3-a", 3);
    assert_eq!(push("k3-b", 3), Pushed::QueuedWithDrop);
    // Full, no k4 queued: the channel's oldest goes.
    assert_eq!(push("k4-a", 4), Pushed::QueuedWithDrop);
    assert_eq!(drain(&outbox), ["k1-c", "k3-b", "k4-a"]);
}

#[test]
fn controls_do_not_count_against_messages_and_graceful_close_drains() {
    let outbox = stalled(1);
    assert!(outbox.push_control(frame("ack")));
    assert_eq!(
        outbox.push_message(&frame("m"), 0, 0, 0, SlowClientPolicy::Disconnect),
        Pushed::Queued
    );
    outbox.close(Close::Shutdown);
    assert!(!outbox.push_control(frame("late")));
    let mut out = Vec::new();
    assert_eq!(
        outbox.take(&mut out, 1),
        None,
        "close waits for the queue to drain"
    );
    assert_eq!(outbox.take(&mut out, 10).map(Close::code), Some(1001));
    assert_eq!(out.len(), 2);
}

#[test]
fn control_room_is_bounded() {
    let outbox = stalled(1);
    for _ in 0..CONTROL_LIMIT {
        outbox.push_control(frame("x"));
    }
    assert!(!outbox.has_control_room());
    let mut out = Vec::new();
    outbox.take(&mut out, 1);
    assert!(outbox.has_control_room());
}

#[test]
fn replays_bypass_the_capacity_but_pause_reading() {
    let outbox = stalled(1);
    outbox.push_replay((0..5).map(|i| frame(&format!("r{i}"))));
    assert!(
        !outbox.has_control_room(),
        "no new frames read while a replay is queued"
    );
    assert_eq!(
        outbox.push_message(&frame("live"), 0, 0, 0, SlowClientPolicy::Disconnect),
        Pushed::Queued
    );
    assert_eq!(drain(&outbox), ["r0", "r1", "r2", "r3", "r4", "live"]);
    assert!(outbox.has_control_room());
}

#[tokio::test]
async fn writer_wakes_on_push_from_another_thread() {
    let outbox = std::sync::Arc::new(Outbox::new(Bounds {
        messages: 8,
        bytes: 1 << 20,
        grace: GRACE,
    }));
    let pusher = outbox.clone();
    let thread = std::thread::spawn(move || {
        pusher.push_message(&frame("x"), 0, 0, 0, SlowClientPolicy::Disconnect);
    });
    let (out, close) = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        outbox.next_batch(Vec::new(), 16),
    )
    .await
    .expect("woken");
    thread.join().unwrap();
    assert_eq!((close, out.len()), (None, 1));
}

fn push(outbox: &Outbox, text: &str) -> Pushed {
    outbox.push_message(&frame(text), 0, 0, 0, SlowClientPolicy::Disconnect)
}

#[test]
fn over_the_bounds_a_draining_socket_queues_and_asks_to_wait() {
    let outbox = Outbox::new(Bounds {
        messages: 2,
        bytes: usize::MAX,
        grace: GRACE,
    });
    assert_eq!(push(&outbox, "a"), Pushed::Queued);
    assert_eq!(push(&outbox, "b"), Pushed::Queued);
    for text in ["c", "d", "e"] {
        assert_eq!(
            push(&outbox, text),
            Pushed::Behind,
            "the client is not slow"
        );
    }
    let shed =
        |text: &str| outbox.push_message(&frame(text), 0, 0, 0, SlowClientPolicy::DropOldest);
    assert_eq!(shed("f"), Pushed::Behind, "the socket still takes bytes");
    // The socket stops taking bytes: a shedding channel sheds at once, a disconnect
    // channel still waits for the client to catch up.
    outbox.set_socket_blocked(true);
    assert_eq!(shed("g"), Pushed::QueuedWithDrop);
    assert_eq!(push(&outbox, "h"), Pushed::Behind);
    assert_eq!(outbox.closing(), None);
    // It does not catch up in time: slow.
    outbox.wait_for_writer(Instant::now() + Duration::from_millis(20), false);
    assert_eq!(push(&outbox, "i"), Pushed::Overflow);
    assert_eq!(outbox.closing().map(Close::code), Some(4001));
}

#[test]
fn the_byte_bound_counts_frames_as_written() {
    let outbox = stalled_bounds(Bounds {
        messages: 1000,
        bytes: 450,
        grace: GRACE,
    });
    // Frames of 100 bytes of text and a 2-byte header: 102 bytes each on the wire.
    let text = "x".repeat(100);
    for _ in 0..4 {
        assert_eq!(push(&outbox, &text), Pushed::Queued);
    }
    assert_eq!(
        push(&outbox, &text),
        Pushed::Queued,
        "408 bytes < 450 before it"
    );
    assert_eq!(push(&outbox, &text), Pushed::Overflow, "510 bytes queued");
}

#[test]
fn one_frame_larger_than_the_byte_bound_still_goes_alone() {
    let outbox = stalled_bounds(Bounds {
        messages: 10,
        bytes: 10,
        grace: GRACE,
    });
    assert_eq!(push(&outbox, &"y".repeat(100)), Pushed::Queued);
    assert_eq!(push(&outbox, "z"), Pushed::Overflow);
}

#[test]
fn a_waiting_pusher_resumes_when_the_writer_catches_up_or_a_shedding_socket_blocks() {
    let outbox = std::sync::Arc::new(Outbox::new(Bounds {
        messages: 4,
        bytes: usize::MAX,
        grace: GRACE,
    }));
    for i in 0..10 {
        push(&outbox, &i.to_string());
    }
    let writer = outbox.clone();
    let thread = std::thread::spawn(move || {
        let mut out = Vec::new();
        writer.take(&mut out, 8);
        out.len()
    });
    let started = Instant::now();
    let patience = started + Duration::from_secs(5);
    outbox.wait_for_writer(patience, false);
    assert!(Instant::now() < patience, "woken by the writer");
    assert_eq!(thread.join().unwrap(), 8);
    assert_eq!(outbox.queued_messages(), 2);

    for i in 0..10 {
        push(&outbox, &i.to_string());
    }
    let socket = outbox.clone();
    let thread = std::thread::spawn(move || socket.set_socket_blocked(true));
    outbox.wait_for_writer(patience, true);
    assert!(Instant::now() < patience, "woken by the blocked socket");
    thread.join().unwrap();
    assert_eq!(
        outbox.push_message(&frame("late"), 0, 0, 0, SlowClientPolicy::DropOldest),
        Pushed::QueuedWithDrop
    );
}

#[test]
fn a_session_that_does_not_catch_up_within_the_deadline_is_slow_until_it_has() {
    let outbox = Outbox::new(Bounds {
        messages: 1,
        bytes: usize::MAX,
        grace: GRACE,
    });
    push(&outbox, "a");
    assert_eq!(push(&outbox, "b"), Pushed::Behind);
    let deadline = Instant::now() + Duration::from_millis(50);
    outbox.wait_for_writer(deadline, false);
    assert!(Instant::now() >= deadline);
    assert_eq!(push(&outbox, "c"), Pushed::Overflow);
}

#[test]
fn time_in_which_the_socket_takes_bytes_does_not_count_as_slow() {
    let outbox = std::sync::Arc::new(Outbox::new(Bounds {
        messages: 2,
        bytes: usize::MAX,
        grace: GRACE,
    }));
    for text in ["a", "b"] {
        push(&outbox, text);
    }
    assert_eq!(push(&outbox, "c"), Pushed::Behind);
    // The writer runs only after four graces (the bridge is busy), the socket never blocked.
    let writer = outbox.clone();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(GRACE * 4);
        let mut out = Vec::new();
        writer.take(&mut out, 2);
    });
    outbox.wait_for_writer(Instant::now() + Duration::from_secs(5), false);
    thread.join().unwrap();
    assert_eq!(push(&outbox, "d"), Pushed::Queued, "not slow");
    assert_eq!(push(&outbox, "e"), Pushed::Behind, "not slow");
}

#[test]
fn a_blocked_socket_makes_a_session_slow_after_the_grace_not_the_patience() {
    let outbox = Outbox::new(Bounds {
        messages: 1,
        bytes: usize::MAX,
        grace: GRACE,
    });
    push(&outbox, "a");
    assert_eq!(push(&outbox, "b"), Pushed::Behind);
    outbox.set_socket_blocked(true);
    let started = Instant::now();
    let patience = started + Duration::from_secs(30);
    outbox.wait_for_writer(patience, false);
    assert!(started.elapsed() >= GRACE);
    assert!(Instant::now() < patience);
    assert_eq!(push(&outbox, "c"), Pushed::Overflow);
}

/// A client that takes a batch now and then, slower than the records come, catches up with the
/// high bound at every batch; it stays behind until it drains to half, so its blocked time adds
/// up across those catch-ups and it is slow after the grace.
#[test]
fn a_trickling_reader_stays_behind_until_it_drains_to_half() {
    let outbox = Outbox::new(Bounds {
        messages: 4,
        bytes: usize::MAX,
        grace: GRACE,
    });
    for text in ["a", "b", "c", "d"] {
        push(&outbox, text);
    }
    assert_eq!(push(&outbox, "e"), Pushed::Behind);
    let patience = Instant::now() + Duration::from_secs(30);
    for round in 0..3 {
        // The socket refuses bytes for 60 % of the grace, then takes two frames.
        outbox.set_socket_blocked(true);
        std::thread::sleep(GRACE * 3 / 5);
        outbox.set_socket_blocked(false);
        let mut out = Vec::new();
        outbox.take(&mut out, 2);
        outbox.wait_for_writer(patience, false);
        let pushed = [push(&outbox, "f"), push(&outbox, "g")];
        if round == 0 {
            assert_eq!(pushed, [Pushed::Queued, Pushed::Behind], "within the grace");
        } else {
            assert_eq!(pushed[1], Pushed::Behind, "still paced: not blocked now");
            outbox.set_socket_blocked(true);
            std::thread::sleep(GRACE / 2);
            outbox.wait_for_writer(patience, false);
            assert_eq!(
                push(&outbox, "h"),
                Pushed::Overflow,
                "blocked for the grace in all"
            );
            return;
        }
    }
}

#[test]
fn draining_to_half_ends_being_behind() {
    let outbox = Outbox::new(Bounds {
        messages: 4,
        bytes: usize::MAX,
        grace: GRACE,
    });
    for text in ["a", "b", "c", "d"] {
        push(&outbox, text);
    }
    assert_eq!(push(&outbox, "e"), Pushed::Behind);
    outbox.set_socket_blocked(true);
    std::thread::sleep(GRACE * 3 / 5);
    outbox.set_socket_blocked(false);
    outbox.take(&mut Vec::new(), 2);
    assert!(outbox.is_behind(), "three of four left");
    outbox.take(&mut Vec::new(), 1);
    assert!(!outbox.is_behind(), "two of four left");
    // The next episode's grace starts afresh: 60 % of it blocked again is not slow.
    for text in ["f", "g"] {
        push(&outbox, text);
    }
    assert_eq!(push(&outbox, "h"), Pushed::Behind);
    outbox.set_socket_blocked(true);
    std::thread::sleep(GRACE * 3 / 5);
    outbox.set_socket_blocked(false);
    outbox.take(&mut Vec::new(), 2);
    outbox.wait_for_writer(Instant::now() + Duration::from_secs(5), false);
    assert_eq!(push(&outbox, "i"), Pushed::Queued);
    assert_eq!(push(&outbox, "j"), Pushed::Behind, "not slow");
}
