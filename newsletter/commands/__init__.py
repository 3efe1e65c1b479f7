"""CLI commands of the later stages; each module registers its commands on `newsletter.cli.cli`."""
