"""The Textual interface: thin views over mnist_tui.core."""
