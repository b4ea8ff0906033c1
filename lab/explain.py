"""``mtasts-lab explain``: a scenario told for a person: the world, the phases, what the
attacker and a compliant sender do, what to look for, why it matters."""

from __future__ import annotations

import textwrap

from lab.scenario_model import Scenario


def explain(s: Scenario) -> str:
    wrap = textwrap.TextWrapper(width=88)
    out = [s.id, "=" * len(s.id), s.summary, ""]
    policy = s.world.domain.policy
    out.append("World: recipient domain " + s.world.domain.name + ", MX "
               + ", ".join(s.world.domain.mx)
               + (f", policy mode {policy.mode} (mx: {', '.join(policy.mx)})" if policy
                  else ", no MTA-STS policy"))
    if s.world.smart_host:
        relay = s.world.policy_domain
        rp = relay.policy
        out.append(f"The sender relays through the smart host {relay.name} (MX "
                   + ", ".join(relay.mx)
                   + (f", policy mode {rp.mode} (mx: {', '.join(rp.mx)})" if rp
                      else ", no MTA-STS policy")
                   + "): its domain is the policy domain (RFC 8461 3.4)")
    out.append("")
    for p in s.phases:
        attacks = ", ".join(f"{a.name} ({a.summary})" for a in p.attacks) or "no attack"
        out.append(f"Phase {p.name}: {attacks}")
        out.append(f"  a compliant sender: {' or '.join(p.expect.outcome)} "
                   f"({p.expect.level})")
    out.append("")
    if s.attacker_does:
        out += ["What the attacker does:", *wrap.wrap(s.attacker_does), ""]
    if s.compliant_does:
        out += ["What a compliant sender does:", *wrap.wrap(s.compliant_does), ""]
    out += ["What to look for (mtasts-lab run --show " + s.id + "):",
            *wrap.wrap("FIRED lines show what proves each attack fired (an SMTP attack also "
                       "shows ATTACK lines where it acted); without that proof the verdict is "
                       "inconclusive. Then see whether the genuine MX received the message "
                       "(an MX line, with the TLS version or plaintext), whether the sender "
                       "completed TLS with the attacker's certificate (TLS ... completed), or "
                       "whether the sender gave up (a SENDER line with its status and reason: "
                       "under enforce a refusal must be a deferral, never a bounce)."), ""]
    out.append("Why it matters:")
    for para in s.teach.strip().split("\n\n"):
        out += wrap.wrap(" ".join(para.split()))
        out.append("")
    out.append("References: " + "; ".join(s.refs))
    if s.covers:
        out.append("Checklist: " + ", ".join(s.covers))
    if s.known_failures:
        out.append("Known failures:")
        out += [f"  {k}: {v}" for k, v in s.known_failures.items()]
    return "\n".join(out).rstrip() + "\n"
