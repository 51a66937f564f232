//! `missive chat`: the live mode. Prints messages as the server pushes them and, with a
//! conversation, sends each line of input there, in order, none dropped.

use std::time::Duration;

use anyhow::bail;
use missive_core::account::Outcome;
use missive_core::client::Client;
use missive_core::CoreError;
use tokio::io::AsyncBufReadExt;

use crate::show::{print_message, report, Receipted};
use missive_core::store::ConversationRecord;

/// How long a line keeps being sent again while the server cannot be reached (a restart, a
/// network cut) before it is given up as not sent.
const SEND_PATIENCE: Duration = Duration::from_secs(120);

/// Runs the live mode until `/quit`, or the end of input when sending to `conversation` (as
/// typed: an id or a prefix of one). Returns the number of alerts; fails, naming how many, if
/// any line could not be sent.
pub async fn chat(
    client: &mut Client,
    conversation: Option<String>,
    json: bool,
) -> anyhow::Result<usize> {
    let outcomes = client.sync().await?;
    let mut alerts = report(&outcomes);
    // After the sync: a conversation we were just added to is known now.
    let conversation = match conversation {
        Some(typed) => Some(crate::conversation_id(client, &typed)?),
        None => None,
    };
    show_new(client, &outcomes, json)?;
    send_receipts(client).await?;
    let mut push = Some(client.connect_push().await?);
    if !json {
        match &conversation {
            Some(c) => eprintln!("chatting in {c}; type a message and press enter, /quit to leave"),
            None => eprintln!("listening to every conversation; end of input leaves"),
        }
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let mut unsent = 0usize;
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(connection) = push.as_mut() else {
            // Reconnect: catch up on what was missed, then listen again.
            tokio::time::sleep(backoff).await;
            match client.sync().await {
                Ok(outcomes) => {
                    alerts += report(&outcomes);
                    show_new(client, &outcomes, json)?;
                    send_receipts(client).await?;
                    push = client.connect_push().await.ok();
                }
                Err(CoreError::Network(_)) => {}
                Err(e) => return Err(e.into()),
            }
            if push.is_some() {
                backoff = Duration::from_millis(200);
                eprintln!("reconnected");
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            continue;
        };
        tokio::select! {
            batch = connection.next_batch() => {
                match batch {
                    Ok(Some(events)) => {
                        let outcomes = client.process_events(&events).await?;
                        alerts += report(&outcomes);
                        show_new(client, &outcomes, json)?;
                        send_receipts(client).await?;
                    }
                    Ok(None) | Err(_) => {
                        eprintln!("connection to the server lost; reconnecting");
                        push = None;
                    }
                }
            }
            line = lines.next_line(), if input_open => {
                match line? {
                    None => {
                        if conversation.is_some() {
                            break;
                        }
                        // Listening only: keep going without input.
                        input_open = false;
                    }
                    Some(line) if line.trim() == "/quit" => break,
                    Some(line) if line.trim().is_empty() => {}
                    Some(line) => match &conversation {
                        // One line at a time, each sent (the client waits out the server's
                        // rate limit and a short outage) before the next is read: the order
                        // typed is the order sent.
                        Some(c) => {
                            let text = line.trim_end();
                            if let Err(e) = client.send_text_patiently(c, text, SEND_PATIENCE).await {
                                eprintln!("not sent: {text:?}: {e}");
                                unsent += 1;
                            }
                        }
                        None => eprintln!("listening only: start chat with a conversation id to send"),
                    },
                }
            }
        }
    }
    if unsent > 0 {
        bail!("{unsent} line(s) could not be sent (each is named above after `not sent:`)");
    }
    Ok(alerts)
}

/// Prints received messages not shown yet and marks them shown, then the messages `outcomes`
/// changed (edited, deleted, reacted to) as they are now, each once.
pub fn show_new(client: &mut Client, outcomes: &[Outcome], json: bool) -> anyhow::Result<()> {
    let new = client.account.store().unshown_messages()?;
    let mut printed = std::collections::HashSet::new();
    let mut records = std::collections::HashMap::new();
    let store = client.account.store();
    let mut record = |id: &str| -> anyhow::Result<Option<ConversationRecord>> {
        if !records.contains_key(id) {
            records.insert(id.to_owned(), store.conversation(id)?);
        }
        Ok(records[id].clone())
    };
    for m in &new {
        let c = record(&m.conversation)?;
        let shown = c.as_ref().map(|conversation| Receipted {
            conversation,
            members: None,
        });
        print_message(m, shown.as_ref(), json)?;
        printed.insert(m.id.clone());
    }
    for o in outcomes {
        if let Outcome::Changed(m) = o {
            if printed.insert(m.id.clone()) {
                // The message as stored now (a later change in the batch may have followed).
                if let Some(now) = store.message(&m.id)? {
                    let c = record(&now.conversation)?;
                    let shown = c.as_ref().map(|conversation| Receipted {
                        conversation,
                        members: None,
                    });
                    crate::show::print_change(&now, shown.as_ref(), json)?;
                }
            }
        }
    }
    client
        .account
        .mark_shown(new.into_iter().map(|m| m.id).collect())?;
    Ok(())
}

/// Sends the delivery receipts due; a server out of reach leaves them for the next time.
pub async fn send_receipts(client: &mut Client) -> anyhow::Result<()> {
    match client.send_receipts().await {
        Ok(_) | Err(CoreError::Network(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
