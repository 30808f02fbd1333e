"""The command line: aws_signing_helper's commands, ship and demo (layer 5). Nothing imports it."""
