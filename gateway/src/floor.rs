//! The simulated floor (`madoguchi-gateway --simulate`): every device of a
//! gateway configuration is replaced by its simulator on a pseudo-terminal,
//! speaking the real protocol, so a newcomer sees tickets printed (as text)
//! and call boards change without any hardware. The gateway itself runs
//! unchanged on the other end of each pty.

use std::collections::HashMap;

use madoguchi_platform::clock::SharedClock;
use tokio::sync::mpsc;

use crate::app::{Overrides, RunningGateway, start};
use crate::config::GatewayConfig;
use crate::devices::board::sim as board_sim;
use crate::devices::panel::sim as panel_sim;
use crate::devices::printer::sim as printer_sim;
use crate::devices::terminal::sim as terminal_sim;
use crate::serial::{Connector, pty_pair};

/// The simulators of a floor.
#[derive(Debug, Default)]
pub struct Simulators {
    /// Kiosk id → printer simulator.
    pub printers: HashMap<String, printer_sim::PrinterSimHandle>,
    /// Kiosk id → button panel simulator.
    pub panels: HashMap<String, panel_sim::PanelSimHandle>,
    /// Line id → board line simulator.
    pub lines: HashMap<String, board_sim::BoardSimHandle>,
    /// Register id → payment terminal simulator (approves by default).
    pub terminals: HashMap<String, terminal_sim::TerminalSimHandle>,
    /// Register id → receipt printer simulator.
    pub receipt_printers: HashMap<String, printer_sim::PrinterSimHandle>,
}

/// Creates a simulator for every device of `config` and starts the gateway
/// wired to them.
pub async fn start_simulated(
    config: &GatewayConfig,
    clock: SharedClock,
) -> anyhow::Result<(RunningGateway, Simulators)> {
    let mut overrides = Overrides::default();
    let mut sims = Simulators::default();
    for kiosk in &config.kiosks {
        let (gateway_end, device_end) = pty_pair()?;
        sims.printers
            .insert(kiosk.id.clone(), printer_sim::spawn(device_end));
        overrides.printers.insert(
            kiosk.id.clone(),
            Connector::once(format!("simulated printer {}", kiosk.id), gateway_end),
        );
        if kiosk.panel.is_some() {
            let (gateway_end, device_end) = pty_pair()?;
            sims.panels.insert(
                kiosk.id.clone(),
                panel_sim::spawn(device_end, std::time::Duration::from_millis(500)),
            );
            overrides.panels.insert(
                kiosk.id.clone(),
                Connector::once(format!("simulated panel {}", kiosk.id), gateway_end),
            );
        }
    }
    for line in &config.board_lines {
        let (gateway_end, device_end) = pty_pair()?;
        sims.lines.insert(
            line.id.clone(),
            board_sim::spawn(device_end, line.units.iter().copied()),
        );
        overrides.lines.insert(
            line.id.clone(),
            Connector::once(format!("simulated line {}", line.id), gateway_end),
        );
    }
    for register in &config.registers {
        let (gateway_end, device_end) = pty_pair()?;
        sims.terminals
            .insert(register.id.clone(), terminal_sim::spawn(device_end));
        overrides.terminals.insert(
            register.id.clone(),
            Connector::once(format!("simulated terminal {}", register.id), gateway_end),
        );
        let (gateway_end, device_end) = pty_pair()?;
        sims.receipt_printers
            .insert(register.id.clone(), printer_sim::spawn(device_end));
        overrides.receipt_printers.insert(
            register.id.clone(),
            Connector::once(
                format!("simulated receipt printer {}", register.id),
                gateway_end,
            ),
        );
    }
    let gateway = start(config, clock, overrides).await?;
    Ok((gateway, sims))
}

/// Runs the simulated floor in the terminal until `shutdown`: prints every
/// ticket and board change, and turns a typed button number (and Enter)
/// into a press on the first kiosk's panel. After `shutdown` the gateway
/// drains for at most `drain`.
pub async fn run_in_terminal(
    config: &GatewayConfig,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
    drain: std::time::Duration,
) -> anyhow::Result<()> {
    let (gateway, sims) = start_simulated(config, clock).await?;
    let mut printed_seen: HashMap<String, usize> = HashMap::new();
    let mut receipts_seen: HashMap<String, usize> = HashMap::new();
    let mut pulses_seen: HashMap<String, usize> = HashMap::new();
    let mut charges_seen: HashMap<String, usize> = HashMap::new();
    for register in &config.registers {
        println!(
            "simulated floor: register {} ({}) — its terminal approves every sale",
            register.id,
            config.register_name(&register.id)
        );
    }
    let mut shown: HashMap<(String, u8), String> = HashMap::new();
    if let Some(kiosk) = config.kiosks.first() {
        println!(
            "simulated floor: kiosk {} — type a button number and Enter:",
            kiosk.id
        );
        for (button, category) in &kiosk.buttons {
            println!("  {button}: {category}");
        }
    }
    let mut lines = typed_lines()?;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    tokio::pin!(shutdown);
    // Stdin may be closed (`< /dev/null`, a service manager): stop reading
    // it at end of file instead of spinning on it.
    let mut stdin_open = true;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            line = lines.recv(), if stdin_open => {
                let Some(line) = line else {
                    stdin_open = false;
                    continue;
                };
                let Some((_, panel)) = sims.panels.iter().next() else { continue };
                match line.trim().parse::<u8>() {
                    Ok(button) => { panel.press(button); }
                    Err(_) => println!("type a button number"),
                }
            }
            _ = tick.tick() => {
                for (kiosk, printer) in &sims.printers {
                    let printed = printer.printed();
                    let seen = printed_seen.entry(kiosk.clone()).or_default();
                    for ticket in &printed[*seen..] {
                        println!("──── kiosk {kiosk} printed ────\n{}", ticket.render_text());
                    }
                    *seen = printed.len();
                }
                for (register, printer) in &sims.receipt_printers {
                    let printed = printer.printed();
                    let seen = receipts_seen.entry(register.clone()).or_default();
                    for receipt in &printed[*seen..] {
                        println!("──── register {register} printed ────\n{}", receipt.render_text());
                    }
                    *seen = printed.len();
                    let pulses = printer.drawer_pulses().len();
                    let seen = pulses_seen.entry(register.clone()).or_default();
                    if pulses > *seen {
                        println!("register {register}: cash drawer opened");
                        *seen = pulses;
                    }
                }
                for (register, terminal) in &sims.terminals {
                    let ledger = terminal.ledger();
                    let seen = charges_seen.entry(register.clone()).or_default();
                    for charge in &ledger[*seen..] {
                        println!("register {register}: terminal charged {} under {}", charge.amount, charge.reference);
                    }
                    *seen = ledger.len();
                }
                for (line_id, line) in &sims.lines {
                    for unit in config
                        .board_lines
                        .iter()
                        .filter(|l| &l.id == line_id)
                        .flat_map(|l| l.units.iter().copied())
                    {
                        let Some(view) = line.view(unit) else { continue };
                        let text = board_text(&view);
                        let key = (line_id.clone(), unit);
                        if shown.get(&key) != Some(&text) {
                            println!("board {line_id}/{unit}: {text}");
                            shown.insert(key, text);
                        }
                    }
                }
            }
        }
    }
    if !gateway.shutdown_within(drain).await {
        tracing::warn!(
            ?drain,
            "gateway tasks still running after the drain deadline"
        );
    }
    Ok(())
}

/// The lines typed on standard input, read on a thread of its own.
///
/// A read blocked on a terminal or an open pipe cannot be cancelled.
/// `tokio::io::stdin` runs it on the runtime's blocking pool, and a runtime
/// shutting down waits for its blocking threads, so Ctrl-C or SIGTERM would
/// wait for the next Enter (issue #23). The process does not wait for this
/// detached thread when `main` returns; it ends at end of file or when the
/// receiver is gone.
fn typed_lines() -> std::io::Result<mpsc::Receiver<String>> {
    use std::io::BufRead;
    let (tx, rx) = mpsc::channel(16);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}

/// What a simulated board shows, as text: `A012`, or `(blank)`; `(off)`
/// while it has no power.
fn board_text(view: &board_sim::BoardView) -> String {
    if !view.powered {
        return "(off)".into();
    }
    match view.display.number {
        None => "(blank)".into(),
        Some(n) => format!(
            "{}{n:03}{}",
            view.display.prefix.map(String::from).unwrap_or_default(),
            if view.display.blink {
                " (blinking)"
            } else {
                ""
            }
        ),
    }
}
