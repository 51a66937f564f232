//! The media relay (a selective forwarding unit): every call's audio and video go through one
//! UDP socket and one thread, where each connected device is a str0m WebRTC peer (ICE-lite,
//! DTLS-SRTP).
//!
//! The relay never holds a media key. What a device sends is an SFrame ciphertext (RFC 9605)
//! keyed from the conversation's MLS group; the relay takes it off SRTP and forwards it, as it
//! is, to the other devices of the same call. Each device offers, per kind (Opus audio, VP8
//! video), one track it sends and a few tracks it receives ("slots"); the relay puts a sender
//! in a free slot of that kind at each receiver, and the receiver learns who it is from the
//! SFrame key id, not from the slot: so no SDP renegotiation when someone joins, leaves, or
//! turns a camera on. A video receiver needs a keyframe to start from: the relay asks the
//! sender for one (PLI) when it gives a slot a new sender, when the receiver asks, and when
//! a frame was lost on the way in.
//!
//! Who may be in a call is decided before a peer reaches this thread (the route checks the
//! device is a member of the group); [`Sfu::remove`] ends a device's connection when a commit
//! removes it or its owner revokes it.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// A speaker who sent nothing for this long gives up its slot to another.
const SLOT_IDLE: Duration = Duration::from_secs(1);
/// The least time between two keyframe requests to one sender (a keyframe is large).
const KEYFRAME_GAP: Duration = Duration::from_millis(500);
/// The longest the relay waits for a packet before looking at its commands and timers.
const TICK: Duration = Duration::from_millis(10);
/// The most tracks of each kind one device may receive on (speakers heard, or seen, at once).
pub const MAX_SLOTS: usize = 16;

/// A device connected to a call.
pub struct Joined {
    /// Its connection in the call.
    pub participant: u64,
    /// The relay's SDP answer.
    pub answer: String,
    /// When the call started (its first participant joined), ms since the Unix epoch.
    pub started_ms: u64,
}

/// Why a join was refused.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the conversation has another call going on")]
    OtherCall,
    #[error("the offer is not usable: {0}")]
    BadOffer(String),
}

/// A call in one conversation, as the routes see it.
#[derive(Clone, Debug)]
pub struct Room {
    pub call_id: Vec<u8>,
    pub started_ms: u64,
    /// Participant id and device id of everyone connected.
    pub participants: Vec<(u64, String)>,
}

/// Counters of the relay's work (benchmarks read them).
#[derive(Default, Debug)]
pub struct SfuStats {
    pub packets_in: AtomicU64,
    pub packets_forwarded: AtomicU64,
}

/// A group whose call changed (someone joined or left, or it ended), and the devices that left
/// it (which may no longer be members of the group).
pub type Change = (Vec<u8>, Vec<String>);
/// Where changes are told.
type Changes = Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<Change>>>>;

enum Command {
    Join(Box<Peer>),
    Leave(u64),
    Stop,
}

/// The relay: its socket's address, the calls going on, and the thread forwarding their media.
pub struct Sfu {
    addr: SocketAddr,
    commands: Mutex<Sender<Command>>,
    rooms: Arc<Mutex<HashMap<Vec<u8>, Room>>>,
    next_id: AtomicU64,
    stats: Arc<SfuStats>,
    provider: Arc<str0m::crypto::CryptoProvider>,
    /// Every payload forwarded, when a test asks for them ([`Sfu::tap`]).
    tap: Arc<Mutex<Option<Vec<Vec<u8>>>>>,
    changes: Changes,
}

impl Sfu {
    /// Binds `listen` (UDP) and starts the relay's thread. Devices are told to send to
    /// `public` (the address they reach the relay at), or to the bound address.
    pub fn start(listen: &str, public: Option<std::net::IpAddr>) -> std::io::Result<Sfu> {
        let socket = UdpSocket::bind(listen)?;
        let local = socket.local_addr()?;
        let addr = match public {
            Some(ip) => SocketAddr::new(ip, local.port()),
            None => local,
        };
        if addr.ip().is_unspecified() {
            return Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                "media_listen binds every address: set media_public_address to the one clients reach",
            ));
        }
        let (tx, rx) = mpsc::channel();
        let rooms = Arc::new(Mutex::new(HashMap::new()));
        let stats = Arc::new(SfuStats::default());
        let tap = Arc::new(Mutex::new(None));
        let changes: Changes = Arc::new(Mutex::new(None));
        let relay = Relay {
            socket,
            local,
            peers: Vec::new(),
            rooms: rooms.clone(),
            stats: stats.clone(),
            tap: tap.clone(),
            changes: changes.clone(),
        };
        std::thread::Builder::new()
            .name("missive-sfu".into())
            .spawn(move || relay.run(rx))?;
        Ok(Sfu {
            addr,
            commands: Mutex::new(tx),
            rooms,
            next_id: AtomicU64::new(1),
            stats,
            provider: Arc::new(str0m::crypto::from_feature_flags()),
            tap,
            changes,
        })
    }

    /// From now on, the groups whose call changes (a join, a leave, a connection lost, the
    /// end) are sent here, once per change, with the devices that left.
    pub fn watch(&self) -> tokio::sync::mpsc::UnboundedReceiver<Change> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *lock(&self.changes) = Some(tx);
        rx
    }

    /// The address devices send media to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> &SfuStats {
        &self.stats
    }

    /// Starts keeping every forwarded payload (what the relay could read), for tests.
    pub fn tap(&self) {
        *lock(&self.tap) = Some(Vec::new());
    }

    /// The payloads kept since [`Sfu::tap`].
    pub fn tapped(&self) -> Vec<Vec<u8>> {
        lock(&self.tap).clone().unwrap_or_default()
    }

    /// The calls going on, by group.
    pub fn rooms(&self) -> HashMap<Vec<u8>, Room> {
        lock(&self.rooms).clone()
    }

    /// Connects `device` to the call `call_id` of `group` (starting it if the group has none)
    /// with its SDP `offer`; the answer is returned. A device already in the call (reconnecting
    /// after its network changed) replaces its previous connection.
    pub fn join(
        &self,
        group: &[u8],
        call_id: &[u8],
        device: &str,
        offer: &str,
        now_ms: u64,
    ) -> Result<Joined, JoinError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| JoinError::BadOffer(e.to_string()))?;
        let mut rtc = Rtc::builder()
            .set_crypto_provider(self.provider.clone())
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        let candidate = Candidate::host(self.addr, "udp")
            .map_err(|e| JoinError::BadOffer(format!("relay address: {e}")))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| JoinError::BadOffer(e.to_string()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (replaced, started_ms) = {
            let mut rooms = lock(&self.rooms);
            let room = rooms.entry(group.to_vec()).or_insert_with(|| Room {
                call_id: call_id.to_vec(),
                started_ms: now_ms,
                participants: Vec::new(),
            });
            if room.call_id != call_id {
                return Err(JoinError::OtherCall);
            }
            let replaced: Vec<u64> = room
                .participants
                .iter()
                .filter(|(_, d)| d == device)
                .map(|(p, _)| *p)
                .collect();
            room.participants.retain(|(_, d)| d != device);
            room.participants.push((id, device.to_owned()));
            (replaced, room.started_ms)
        };
        changed(&self.changes, [(group.to_vec(), Vec::new())]);
        for old in replaced {
            self.send(Command::Leave(old));
        }
        self.send(Command::Join(Box::new(Peer {
            id,
            group: group.to_vec(),
            rtc,
            incoming: None,
            incoming_video: None,
            slots: Vec::new(),
            last_keyframe_request: None,
        })));
        Ok(Joined {
            participant: id,
            answer: answer.to_sdp_string(),
            started_ms,
        })
    }

    /// Ends `device`'s connection to the call of `group`: `None` if it had none, else whether
    /// it was the last one in the call (which ends with it).
    pub fn leave(&self, group: &[u8], device: &str) -> Option<bool> {
        // Who is left is decided under the lock (in `take`): of two devices leaving at the
        // same moment, exactly one is the last, and only it says the call ended.
        let (taken, emptied) = self.take(|g, d| g == group && d == device);
        if taken.is_empty() {
            return None;
        }
        for id in taken {
            self.send(Command::Leave(id));
        }
        Some(emptied.iter().any(|g| g == group))
    }

    /// Ends the connections of `devices` to the call of `group` (they were removed from it).
    pub fn remove(&self, group: &[u8], devices: &[String]) {
        self.disconnect(|g, d| g == group && devices.iter().any(|x| x == d));
    }

    /// Ends every connection of `device` (revoked).
    pub fn remove_device(&self, device: &str) {
        self.disconnect(|_, d| d == device);
    }

    /// Ends the connections `matches` picks (by group and device); how many.
    fn disconnect(&self, matches: impl Fn(&[u8], &str) -> bool) -> usize {
        let (taken, _) = self.take(matches);
        for id in &taken {
            self.send(Command::Leave(*id));
        }
        taken.len()
    }

    /// Takes the connections `matches` picks out of their rooms; returns them, and the groups
    /// whose call they ended (no one left).
    fn take(&self, matches: impl Fn(&[u8], &str) -> bool) -> (Vec<u64>, Vec<Vec<u8>>) {
        take_participants(&mut lock(&self.rooms), &self.changes, |group, _, device| {
            matches(group, device)
        })
    }

    fn send(&self, command: Command) {
        // The thread ends only on Stop (or a panic, which the next join would not survive
        // either): a lost command means there is no relay left to obey it.
        let _ = lock(&self.commands).send(command);
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        self.send(Command::Stop);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes the participants `hit` picks (by group, connection and device) out of `rooms`, tells
/// the watcher which calls changed, and forgets the calls left with no one. Returns the
/// connections taken and the groups whose call they ended.
fn take_participants(
    rooms: &mut HashMap<Vec<u8>, Room>,
    changes: &Changes,
    hit: impl Fn(&[u8], u64, &str) -> bool,
) -> (Vec<u64>, Vec<Vec<u8>>) {
    let mut taken = Vec::new();
    let mut touched = Vec::new();
    for (group, room) in rooms.iter_mut() {
        let mut left = Vec::new();
        room.participants.retain(|(id, device)| {
            let out = hit(group, *id, device);
            if out {
                taken.push(*id);
                left.push(device.clone());
            }
            !out
        });
        if !left.is_empty() {
            touched.push((group.clone(), left));
        }
    }
    changed(changes, touched);
    let mut emptied = Vec::new();
    rooms.retain(|group, room| {
        let empty = room.participants.is_empty();
        if empty {
            emptied.push(group.clone());
        }
        !empty
    });
    (taken, emptied)
}

/// Tells the watcher (if any) that these calls changed.
fn changed(changes: &Changes, groups: impl IntoIterator<Item = Change>) {
    if let Some(tx) = lock(changes).as_ref() {
        for change in groups {
            let _ = tx.send(change);
        }
    }
}

/// One device's connection.
struct Peer {
    id: u64,
    group: Vec<u8>,
    rtc: Rtc,
    /// The track it sends its audio on.
    incoming: Option<Mid>,
    /// The track it sends its video on.
    incoming_video: Option<Mid>,
    /// The tracks it receives on, and who speaks (or is seen) on each.
    slots: Vec<Slot>,
    /// When a keyframe was last asked of it.
    last_keyframe_request: Option<Instant>,
}

struct Slot {
    mid: Mid,
    kind: MediaKind,
    speaker: Option<(u64, Instant)>,
}

/// Where the relay puts a sender's frame at one receiver.
struct Placed {
    mid: Mid,
    /// The slot had another sender (or none) until now.
    new_sender: bool,
}

impl Peer {
    /// The slot of `kind` for `speaker`: the one it has, a free one, or the longest idle if
    /// that is idle enough.
    fn slot_for(&mut self, kind: MediaKind, speaker: u64, now: Instant) -> Option<Placed> {
        let of_kind = |s: &Slot| s.kind == kind;
        let (slot, new_sender) = match self
            .slots
            .iter()
            .position(|s| of_kind(s) && s.speaker.is_some_and(|(p, _)| p == speaker))
        {
            Some(i) => (i, false),
            None => {
                let free = self.slots.iter().position(|s| {
                    of_kind(s)
                        && s.speaker
                            .is_none_or(|(_, last)| now.duration_since(last) > SLOT_IDLE)
                })?;
                (free, true)
            }
        };
        self.slots[slot].speaker = Some((speaker, now));
        Some(Placed {
            mid: self.slots[slot].mid,
            new_sender,
        })
    }

    /// The kind of media it sends on `mid`, if it sends on it.
    fn sends_on(&self, mid: Mid) -> Option<MediaKind> {
        if Some(mid) == self.incoming {
            Some(MediaKind::Audio)
        } else if Some(mid) == self.incoming_video {
            Some(MediaKind::Video)
        } else {
            None
        }
    }

    /// Asks it for a keyframe of its video, unless it was just asked.
    fn request_keyframe(&mut self, now: Instant) {
        let Some(mid) = self.incoming_video else {
            return;
        };
        if self
            .last_keyframe_request
            .is_some_and(|last| now.duration_since(last) < KEYFRAME_GAP)
        {
            return;
        }
        if let Some(mut writer) = self.rtc.writer(mid) {
            if writer
                .request_keyframe(None, KeyframeRequestKind::Pli)
                .is_ok()
            {
                self.last_keyframe_request = Some(now);
            }
        }
    }
}

/// What the peers said while polled: the media they sent, and the keyframes their receivers
/// asked for (receiver, slot).
#[derive(Default)]
struct Polled {
    media: Vec<(u64, MediaData)>,
    keyframe_requests: Vec<(u64, Mid)>,
}

/// The relay thread's state.
struct Relay {
    socket: UdpSocket,
    local: SocketAddr,
    peers: Vec<Peer>,
    rooms: Arc<Mutex<HashMap<Vec<u8>, Room>>>,
    stats: Arc<SfuStats>,
    tap: Arc<Mutex<Option<Vec<Vec<u8>>>>>,
    changes: Changes,
}

impl Relay {
    fn run(mut self, commands: Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        loop {
            loop {
                match commands.try_recv() {
                    Ok(Command::Join(peer)) => self.peers.push(*peer),
                    Ok(Command::Leave(id)) => {
                        if let Some(peer) = self.peers.iter_mut().find(|p| p.id == id) {
                            peer.rtc.disconnect();
                        }
                    }
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.drop_dead();

            // Poll until nothing is left to forward: what a forward wrote is sent by the next
            // poll, now rather than after the wait below.
            let mut next;
            loop {
                next = Instant::now() + TICK;
                let mut polled = Polled::default();
                for peer in &mut self.peers {
                    next = next.min(poll(peer, &self.socket, &mut polled));
                }
                for (receiver, mid) in polled.keyframe_requests {
                    self.pass_keyframe_request(receiver, mid);
                }
                if polled.media.is_empty() {
                    break;
                }
                for (origin, data) in polled.media {
                    self.forward(origin, &data);
                }
            }

            let wait = next
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), TICK);
            let _ = self.socket.set_read_timeout(Some(wait));
            match self.socket.recv_from(&mut buf) {
                Ok((n, source)) => self.receive(&buf[..n], source),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => {
                    // An ICMP error reported on the socket (a peer gone): nothing to do here,
                    // its connection times out.
                    tracing::debug!(error = %e, "media socket");
                }
            }
            let now = Instant::now();
            for peer in &mut self.peers {
                if peer.rtc.is_alive() {
                    if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(error = %e, "call peer failed");
                        peer.rtc.disconnect();
                    }
                }
            }
        }
    }

    fn receive(&mut self, bytes: &[u8], source: SocketAddr) {
        let Ok(contents) = bytes.try_into() else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if let Some(peer) = self.peers.iter_mut().find(|p| p.rtc.accepts(&input)) {
            if let Err(e) = peer.rtc.handle_input(input) {
                tracing::debug!(error = %e, "call peer failed");
                peer.rtc.disconnect();
            }
        }
    }

    /// Forgets connections that ended, and their place in the calls.
    fn drop_dead(&mut self) {
        let dead: Vec<u64> = self
            .peers
            .iter()
            .filter(|p| !p.rtc.is_alive())
            .map(|p| p.id)
            .collect();
        if dead.is_empty() {
            return;
        }
        self.peers.retain(|p| p.rtc.is_alive());
        take_participants(&mut lock(&self.rooms), &self.changes, |_, id, _| {
            dead.contains(&id)
        });
    }

    /// A receiver asked for a keyframe on its video slot `mid`: asks the sender in it.
    fn pass_keyframe_request(&mut self, receiver: u64, mid: Mid) {
        let Some(sender) = self
            .peers
            .iter()
            .find(|p| p.id == receiver)
            .and_then(|p| p.slots.iter().find(|s| s.mid == mid))
            .and_then(|s| s.speaker)
            .map(|(sender, _)| sender)
        else {
            return;
        };
        if let Some(peer) = self.peers.iter_mut().find(|p| p.id == sender) {
            peer.request_keyframe(Instant::now());
        }
    }

    /// Sends what `origin` said (or showed) to everyone else in its call.
    fn forward(&mut self, origin: u64, data: &MediaData) {
        self.stats.packets_in.fetch_add(1, Ordering::Relaxed);
        let Some((group, kind)) = self
            .peers
            .iter()
            .find(|p| p.id == origin)
            .and_then(|p| Some((p.group.clone(), p.sends_on(data.mid)?)))
        else {
            return;
        };
        if let Some(tap) = lock(&self.tap).as_mut() {
            tap.push(data.data.to_vec());
        }
        let now = Instant::now();
        // A lost frame leaves the receivers' pictures broken until the next keyframe.
        let mut needs_keyframe = kind == MediaKind::Video && !data.contiguous;
        for peer in &mut self.peers {
            if peer.id == origin || peer.group != group || !peer.rtc.is_alive() {
                continue;
            }
            let Some(Placed { mid, new_sender }) = peer.slot_for(kind, origin, now) else {
                continue;
            };
            needs_keyframe |= kind == MediaKind::Video && new_sender;
            let Some(writer) = peer.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            if writer
                .write(pt, data.network_time, data.time, data.data.clone())
                .is_ok()
            {
                self.stats.packets_forwarded.fetch_add(1, Ordering::Relaxed);
            }
        }
        if needs_keyframe {
            if let Some(peer) = self.peers.iter_mut().find(|p| p.id == origin) {
                peer.request_keyframe(now);
            }
        }
    }
}

/// Drives one peer until it waits for time to pass: sends what it has to send, keeps the media
/// it received (with its origin) for forwarding and the keyframes it asked for, and notes its
/// tracks.
fn poll(peer: &mut Peer, socket: &UdpSocket, polled: &mut Polled) -> Instant {
    loop {
        if !peer.rtc.is_alive() {
            return Instant::now() + TICK;
        }
        match peer.rtc.poll_output() {
            Ok(Output::Timeout(t)) => return t,
            Ok(Output::Transmit(t)) => {
                let _ = socket.send_to(&t.contents, t.destination);
            }
            Ok(Output::Event(event)) => match event {
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    peer.rtc.disconnect();
                }
                Event::MediaAdded(added) => {
                    let incoming = match added.kind {
                        MediaKind::Audio => &mut peer.incoming,
                        MediaKind::Video => &mut peer.incoming_video,
                    };
                    if matches!(added.direction, Direction::RecvOnly | Direction::SendRecv)
                        && incoming.is_none()
                    {
                        *incoming = Some(added.mid);
                    }
                    let slots = peer.slots.iter().filter(|s| s.kind == added.kind).count();
                    if matches!(added.direction, Direction::SendOnly | Direction::SendRecv)
                        && slots < MAX_SLOTS
                    {
                        peer.slots.push(Slot {
                            mid: added.mid,
                            kind: added.kind,
                            speaker: None,
                        });
                    }
                }
                Event::MediaData(data) if peer.sends_on(data.mid).is_some() => {
                    polled.media.push((peer.id, data));
                }
                Event::KeyframeRequest(request) => {
                    polled.keyframe_requests.push((peer.id, request.mid));
                }
                _ => {}
            },
            Err(e) => {
                tracing::debug!(error = %e, "call peer failed");
                peer.rtc.disconnect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(slots: &[(&str, MediaKind)]) -> Peer {
        Peer {
            id: 1,
            group: Vec::new(),
            rtc: Rtc::new(Instant::now()),
            incoming: None,
            incoming_video: None,
            slots: slots
                .iter()
                .map(|(mid, kind)| Slot {
                    mid: Mid::from(*mid),
                    kind: *kind,
                    speaker: None,
                })
                .collect(),
            last_keyframe_request: None,
        }
    }

    #[test]
    fn senders_take_slots_of_their_kind_and_a_slot_given_to_a_new_sender_says_so() {
        use MediaKind::{Audio, Video};
        let mut peer = receiver(&[("a", Audio), ("v1", Video), ("v2", Video)]);
        let now = Instant::now();
        let placed = |p: Option<Placed>| p.map(|p| (p.mid.to_string(), p.new_sender));
        let at = |mid: &str, new: bool| Some((mid.to_owned(), new));

        // Sender 7's video takes a video slot (new: the relay asks it for a keyframe), then
        // keeps it; its sound goes to the audio slot, never a video one.
        assert_eq!(placed(peer.slot_for(Video, 7, now)), at("v1", true));
        assert_eq!(placed(peer.slot_for(Video, 7, now)), at("v1", false));
        assert_eq!(placed(peer.slot_for(Audio, 7, now)), at("a", true));
        // A second camera takes the other video slot; a third finds none free, and no audio
        // slot either while 7 speaks.
        assert_eq!(placed(peer.slot_for(Video, 8, now)), at("v2", true));
        assert_eq!(placed(peer.slot_for(Video, 9, now)), None);
        assert_eq!(placed(peer.slot_for(Audio, 9, now)), None);
        // Once a camera has sent nothing for a while, its slot goes to the one waiting.
        let later = now + SLOT_IDLE + Duration::from_millis(10);
        assert_eq!(placed(peer.slot_for(Video, 8, later)), at("v2", false));
        assert_eq!(placed(peer.slot_for(Video, 9, later)), at("v1", true));
    }
}
