"""Words and figures shown by both front ends (the headless commands and the app), one
module per job: text (terminal-safe text, commands to paste), times (the one time
formatter), training (a run as it trains), runs (the runs tables), compare (what tells runs
apart), layers (a layer breakdown)."""
