"""``python -m edge_agent`` is the ``edge-agent`` command."""

from edge_agent.cli import main

if __name__ == "__main__":
    main()
