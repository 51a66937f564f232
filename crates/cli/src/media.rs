//! The CLI's call participant, the media side: one WebRTC connection to the server's relay
//! (str0m: ICE, DTLS-SRTP), Opus frames sealed with SFrame under the call's keys on the way out,
//! opened, checked and decoded on the way in. It runs on its own thread, paced by the clock
//! (a frame every 20 ms), while the command's async side follows the conversation.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use missive_core::account::calls::CallEpoch;
use missive_core::call::{CallKeys, Media};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::audio::{Recorder, Source, FRAME, RATE};

/// Speakers heard at once (tracks this participant receives on).
pub const SLOTS: usize = 4;
/// The most a frame may take on the wire: an Opus frame at our bitrate is far smaller.
const MAX_OPUS: usize = 1275;

/// A connection being set up: the offer to send, and what accepting the answer needs.
pub struct Offer {
    pub sdp: String,
    connection: Connection,
    pending: SdpPendingOffer,
}

/// One WebRTC connection to the relay.
pub struct Connection {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    send: Mid,
}

impl Offer {
    /// A new connection from `local` (the address that reaches the server) with one track to
    /// send on and [`SLOTS`] to receive on.
    pub fn new(local: IpAddr) -> anyhow::Result<Offer> {
        let socket = UdpSocket::bind((local, 0)).context("binding a UDP socket for the call")?;
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .clear_codecs()
            .enable_opus(true, false)
            .build(Instant::now());
        let local = socket.local_addr()?;
        let candidate =
            Candidate::host(local, "udp").map_err(|e| anyhow::anyhow!("local candidate: {e}"))?;
        rtc.add_local_candidate(candidate);
        let mut changes = rtc.sdp_api();
        let send = changes.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        for _ in 0..SLOTS {
            changes.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = changes
            .apply()
            .ok_or_else(|| anyhow::anyhow!("nothing to offer"))?;
        Ok(Offer {
            sdp: offer.to_sdp_string(),
            connection: Connection {
                rtc,
                socket,
                local,
                send,
            },
            pending,
        })
    }

    /// The connection, once the relay's `answer` is accepted.
    pub fn accept(mut self, answer: &str) -> anyhow::Result<Connection> {
        let answer = SdpAnswer::from_sdp_string(answer)
            .map_err(|e| anyhow::anyhow!("the relay's answer is not SDP: {e}"))?;
        self.connection
            .rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .map_err(|e| anyhow::anyhow!("the relay's answer: {e}"))?;
        Ok(self.connection)
    }
}

/// What the command tells the media thread.
pub enum Command {
    /// The group moved to a new epoch: seal under it, read the previous one a while longer.
    Rekey(CallEpoch),
    /// A new connection replaces the one lost.
    Replace(Box<Connection>),
    Stop,
}

/// What the media thread tells the command.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    Connected,
    /// The connection was lost (no answer from the relay): the command joins again.
    Lost,
    /// A member sealed frames under an epoch this device has not reached yet: the command
    /// brings the group up to date now (the frames wait, and are heard after the rekey).
    EpochAhead,
}

/// How long frames of an epoch not reached yet are kept, and how many.
const AHEAD_KEPT: Duration = Duration::from_secs(2);
const AHEAD_MAX: usize = 200;

/// What the participant did, once stopped.
pub struct Summary {
    pub recorder: Recorder,
    pub sent: u64,
    /// Frames heard, by sender device.
    pub heard: HashMap<String, u64>,
    /// Frames refused (not sealed by a member under a key of this call).
    pub refused: u64,
    /// The wall clock (ms since the Unix epoch) when the media began: the first frame of the
    /// `--play` file was due then, and the recording's first sample stands for that moment.
    pub started_ms: u64,
}

/// The participant's state on its thread.
pub struct Participant {
    pub connection: Connection,
    pub keys: CallKeys,
    pub source: Option<Source>,
}

impl Participant {
    /// Runs until [`Command::Stop`].
    pub fn run(
        mut self,
        commands: Receiver<Command>,
        reports: tokio::sync::mpsc::UnboundedSender<Report>,
    ) -> anyhow::Result<Summary> {
        let mut encoder = opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Voip)
            .map_err(|e| anyhow::anyhow!("Opus encoder: {e}"))?;
        let start = Instant::now();
        let mut summary = Summary {
            recorder: Recorder::new(start),
            sent: 0,
            heard: HashMap::new(),
            refused: 0,
            started_ms: missive_core::now_ms(),
        };
        let mut connected = false;
        let mut rtp_time: u64 = 0;
        let mut next_frame = start;
        let mut buf = vec![0u8; 2048];
        let mut ears = Ears::default();
        let mut ahead: Vec<(Vec<u8>, Instant)> = Vec::new();
        loop {
            match commands.try_recv() {
                Ok(Command::Rekey(epoch)) => {
                    self.keys.rekey(epoch, Instant::now())?;
                    // The frames that came ahead of this epoch, heard now at their arrival.
                    for (frame, arrived) in std::mem::take(&mut ahead) {
                        if arrived.elapsed() < AHEAD_KEPT {
                            ears.hear(&mut self.keys, &frame, arrived, &mut summary)?;
                        }
                    }
                }
                Ok(Command::Replace(connection)) => {
                    self.connection = *connection;
                    connected = false;
                }
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }

            // One frame every 20 ms (sent by the poll just below, not after the wait), from the file while it lasts (nothing sent once it is
            // played: silence costs no packets).
            let now = Instant::now();
            if now >= next_frame {
                next_frame += Duration::from_millis(20);
                if next_frame < now {
                    next_frame = now + Duration::from_millis(20);
                }
                let frame = self.source.as_mut().and_then(Source::next_frame);
                if let (Some(frame), true) = (frame, connected) {
                    let mut opus_frame = [0u8; MAX_OPUS];
                    let n = encoder
                        .encode(&frame, &mut opus_frame)
                        .map_err(|e| anyhow::anyhow!("Opus encoding: {e}"))?;
                    let sealed = self.keys.seal(&opus_frame[..n])?;
                    if let Some(writer) = self.connection.rtc.writer(self.connection.send) {
                        let pt = writer
                            .payload_params()
                            .find(|p| p.spec().codec == Codec::Opus)
                            .map(|p| p.pt());
                        if let Some(pt) = pt {
                            let time = MediaTime::new(rtp_time, Frequency::FORTY_EIGHT_KHZ);
                            if writer.write(pt, now, time, sealed).is_ok() {
                                summary.sent += 1;
                            }
                        }
                    }
                }
                rtp_time += FRAME as u64;
            }

            // What the connection has to say and send.
            let timeout = loop {
                match self.connection.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        let _ = self.connection.socket.send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Event(event)) => match event {
                        Event::Connected => {
                            connected = true;
                            let _ = reports.send(Report::Connected);
                        }
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                            if connected =>
                        {
                            connected = false;
                            let _ = reports.send(Report::Lost);
                        }
                        Event::MediaData(data) if data.mid != self.connection.send => {
                            let now = Instant::now();
                            if self.keys.is_ahead(Media::Audio, &data.data) {
                                if ahead.is_empty() {
                                    let _ = reports.send(Report::EpochAhead);
                                }
                                if ahead.len() < AHEAD_MAX {
                                    ahead.push((data.data.to_vec(), now));
                                }
                            } else {
                                ears.hear(&mut self.keys, &data.data, now, &mut summary)?;
                            }
                        }
                        _ => {}
                    },
                    Err(e) => {
                        if connected {
                            connected = false;
                            let _ = reports.send(Report::Lost);
                        }
                        eprintln!("warning: call connection: {e}");
                        break Instant::now() + Duration::from_millis(20);
                    }
                }
            };

            // Wait for a packet until the next frame or timer.
            let wake = timeout.min(next_frame);
            let wait = wake
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_millis(20));
            let socket = &self.connection.socket;
            let _ = socket.set_read_timeout(Some(wait));
            // Nothing in time (or an ICMP error for a packet sent): the timers go on.
            if let Ok((n, source)) = socket.recv_from(&mut buf) {
                if let Ok(contents) = buf[..n].try_into() {
                    let input = Input::Receive(
                        Instant::now(),
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: self.connection.local,
                            contents,
                        },
                    );
                    let _ = self.connection.rtc.handle_input(input);
                }
            }
            let _ = self
                .connection
                .rtc
                .handle_input(Input::Timeout(Instant::now()));
        }
        Ok(summary)
    }
}

/// The local address that reaches `server` (the one a UDP socket connected there would use).
pub fn local_ip_towards(server: SocketAddr) -> anyhow::Result<IpAddr> {
    let probe = UdpSocket::bind(if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    probe
        .connect(server)
        .with_context(|| format!("no route to {server}"))?;
    Ok(probe.local_addr()?.ip())
}

/// What this participant hears with: a decoder per speaking device.
#[derive(Default)]
struct Ears {
    decoders: HashMap<String, opus::Decoder>,
    pcm: Vec<i16>,
}

impl Ears {
    /// Opens, checks and decodes one frame received at `at`, into the recording.
    fn hear(
        &mut self,
        keys: &mut CallKeys,
        frame: &[u8],
        at: Instant,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let Ok(opened) = keys.open(frame, at) else {
            summary.refused += 1;
            return Ok(());
        };
        let device = opened.sender.device_id;
        let decoder = match self.decoders.entry(device.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                opus::Decoder::new(RATE, opus::Channels::Mono)
                    .map_err(|e| anyhow::anyhow!("Opus decoder: {e}"))?,
            ),
        };
        self.pcm.resize(FRAME * 6, 0);
        if let Ok(n) = decoder.decode(&opened.payload, &mut self.pcm, false) {
            summary.recorder.add(&device, &self.pcm[..n], at);
            *summary.heard.entry(device).or_default() += 1;
        }
        Ok(())
    }
}
