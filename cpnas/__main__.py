from cpnas.cli import entry_point

entry_point()
