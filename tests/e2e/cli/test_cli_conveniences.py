"""The router's conveniences in a pty: output modifiers with their `?` help, show running-config sections,
the import command's own help, and the enroll password asked again after a mismatch."""

from __future__ import annotations

from cli_e2e_helpers import CHALLENGE, Cli

from agentproc import AgentProcess
from labcaproc import LabCaProcess

P = "RP/0/RP0/CPU0:"


def test_output_modifiers_and_sections(agent: AgentProcess, cli_factory) -> None:
    cli: Cli = cli_factory(agent)
    cli.run("configure")
    for line in ("hostname r1", "domain name example.com", "crypto ca trustpoint myca",
                 "enrollment url http://ca.example/scep", "enrollment retry count 25", "exit",
                 "crypto ca trustpoint other", "enrollment terminal", "end"):
        cli.send(line)
    cli.answer("Uncommitted changes found, commit them? [yes]:", "")
    cli.wait_prompt()
    assert cli.prompt == f"{P}r1#"

    assert cli.run("show running-config crypto ca trustpoint myca") == [
        "crypto ca trustpoint myca", " enrollment url http://ca.example/scep", " enrollment retry count 25", "!"]
    assert cli.run("show running-config domain") == ["domain name example.com"]
    assert cli.run("show runn crypto ca trustpoint") == [
        "crypto ca trustpoint myca", " enrollment url http://ca.example/scep", " enrollment retry count 25", "!",
        "crypto ca trustpoint other", " enrollment terminal", "!"]
    assert cli.run("show running-config | include ^crypto") == ["crypto ca trustpoint myca",
                                                                "crypto ca trustpoint other"]
    assert cli.run("show running-config | exclude ^ |!|username") == [
        "Building configuration...", "hostname r1", "domain name example.com", "crypto ca trustpoint myca",
        "crypto ca trustpoint other", "taskgroup root-system", "taskgroup pki-admin", "taskgroup operator", "end"]
    assert cli.run("show running-config crypto ca trustpoint | begin other | count") == [
        "Number of lines which match regexp = 3"]
    assert cli.run("show crypto key mypubkey rsa | i ^Key label") == ["Key label: the_default"]
    assert cli.run("show runn | grep x")[-1] == "% Invalid input detected at '^' marker."
    assert cli.run("show runn | include") == ["% Incomplete command."]

    # `?` after a show offers the modifiers, and after the bar lists them
    cli.child.send("show running-config ?")
    cli.child.expect_exact("  |     Output modifiers")
    cli.child.send("\x15")  # Ctrl-U: clear the line
    cli.child.send("show running-config | ?")
    for word in ("begin", "count", "exclude", "include"):
        cli.child.expect_exact(f"  {word}")
    cli.child.send("\x15")
    cli.send("")
    cli.wait_prompt()
    assert cli.close() == 0


def test_import_help_is_its_own(agent: AgentProcess, cli_factory) -> None:
    cli: Cli = cli_factory(agent)
    cli.child.send("crypto key import authentication rsa ?")
    cli.child.expect_exact("  general-keys  Import a general purpose RSA public key (the only kind accepted)")
    cli.child.expect_exact("  WORD          Label of the imported key (default: your user name)")
    cli.child.send("\x15")
    cli.child.send("crypto key generate rsa ?")
    cli.child.expect_exact("  general-keys  Generate a general purpose RSA key pair")
    cli.child.send("\x15")
    cli.send("")
    cli.wait_prompt()
    assert cli.close() == 0


def test_a_password_mismatch_at_enroll_asks_again(agent: AgentProcess, lab_ca: LabCaProcess, cli_factory) -> None:
    cli: Cli = cli_factory(agent)
    cli.run("configure")
    cli.run("crypto ca trustpoint myca")
    cli.run(f"enrollment url {lab_ca.url}")
    cli.run("commit")
    cli.run("end")
    cli.send("crypto ca authenticate myca")
    cli.answer("Do you accept this certificate?? [yes/no]:", "yes")
    cli.wait_prompt()
    cli.send("crypto ca enroll myca")
    cli.answer("Password: ", CHALLENGE)
    cli.answer("Re-enter Password: ", "typo")
    cli.answer("Password: ", CHALLENGE)  # asked again, not aborted
    cli.answer("Re-enter Password: ", CHALLENGE)
    out = cli.wait_prompt()
    assert "% Passwords do not match. Please try again." in out
    assert any(line.startswith("% Certificate received from the CA and installed") for line in out), out
    assert cli.close() == 0
