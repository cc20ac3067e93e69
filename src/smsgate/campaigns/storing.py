"""Storing a campaign's classified chunks: opt-outs (step 5 of :mod:`~smsgate.campaigns.preparation`),
the write, and the duplicates the store finds.

:class:`ChunkStore` holds what this part of a preparation needs and nothing of the tenant's
policy (the opt-out scope of each provider's sender is worked out beforehand), so that it can
run on the preparation's writer thread or in a writer process of its own
(:mod:`~smsgate.campaigns.writer_process`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from smsgate.keywords import ScopeRule
from smsgate.models import storable
from smsgate.store.base import RecipientRow, RecipientState, Store

__all__ = ["ChunkStore", "Tally"]

_SKIPPED = RecipientState.SKIPPED

#: What a pending row adds to the summary: (provider, encoding, segments), one tuple for each
Tally = tuple[str, str, int]


class ChunkStore:
    """Writes a preparation's chunks into ``store``, in order, and keeps what the summary needs
    from the writing: what duplicates and opt-outs take back from the classified counts, the
    first ``max_errors`` skipped rows and the first ``max_samples`` texts.

    ``locate(line)`` names a row's place in its audience; ``scopes`` is the opt-out scope key
    of the sender each provider instance sends from (``None``: the campaign's own sender, for
    rows without a provider), as :meth:`TenantPolicy.sender_scope
    <smsgate.core.policy.TenantPolicy.sender_scope>` gives it, and ``rule`` the tenant's rule
    matching them to the scopes stored (:attr:`TenantPolicy.scope_rule
    <smsgate.core.policy.TenantPolicy.scope_rule>`).
    """

    def __init__(self, store: Store, tenant: str, campaign_id: str, locate: Callable[[int], str],
                 scopes: Mapping[str | None, str | None], rule: ScopeRule, *, max_errors: int,
                 max_samples: int = 5) -> None:
        self.store = store
        self.tenant = tenant
        self.campaign_id = campaign_id
        self.locate = locate
        self.scopes = dict(scopes)
        self.rule = rule
        self.max_errors = max_errors
        self.max_samples = max_samples
        #: what the store's duplicates and opt-outs take back from the classified counts
        self.undo_counts: dict[Tally, int] = {}
        self.undo_skipped: dict[str, int] = {}
        self.errors: list[dict[str, Any]] = []
        self.samples: list[dict[str, str]] = []

    def write(self, rows: list[RecipientRow], tallies: list[Tally | None], texts: list[str | None],
              given: list[str], where: list[str | None], checked: list[int]) -> None:
        """Write a chunk; duplicates found by the store become skipped rows.

        ``tallies[i]`` is pending row ``i``'s :data:`Tally` (``None`` for a skipped row),
        ``texts[i]`` its text, ``given[i]`` its number as the audience gave it, ``where[i]`` its
        location (``None``: ``locate(line)``), and ``checked`` the rows whose number step 5 checks.
        """
        store, tenant, cid = self.store, self.tenant, self.campaign_id
        locate = self.locate

        def duplicate(r: RecipientRow, first_line: int | None) -> RecipientRow:
            first = locate(first_line) if first_line is not None else "an earlier row"
            return RecipientRow(r.seq, r.phone, _SKIPPED, r.fields, "duplicate",
                                f"{locate(r.line or 0)}: {r.phone} already at {first}", line=r.line)

        undo_counts, undo_skipped = self.undo_counts, self.undo_skipped
        self._opt_out(rows, tallies, where, checked)
        for dup in store.add_recipients(tenant, cid, rows, duplicate):  # stored as skipped
            before, tally = rows[dup.index], tallies[dup.index]
            if tally is not None:
                undo_counts[tally] = undo_counts.get(tally, 0) + 1
            else:
                reason = before.reason or "other"
                undo_skipped[reason] = undo_skipped.get(reason, 0) + 1
            undo_skipped["duplicate"] = undo_skipped.get("duplicate", 0) - 1
            rows[dup.index] = duplicate(before, dup.first_line)
            tallies[dup.index] = None
        errors, samples, max_errors, max_samples = self.errors, self.samples, self.max_errors, self.max_samples
        if len(errors) >= max_errors and len(samples) >= max_samples:
            return
        for r, tally, text, raw in zip(rows, tallies, texts, given, strict=True):  # the first errors and samples
            if tally is not None:
                if len(samples) < max_samples:
                    samples.append({"to": r.phone, "text": text or ""})
            elif len(errors) < max_errors:
                location, _, detail = (r.detail or "").partition(": ")
                errors.append({"seq": r.seq, "location": location, "phone": storable(raw),
                               "reason": r.reason or "other", "detail": detail})
            elif len(samples) >= max_samples:
                return

    def absorb(self, undo_counts: dict[Tally, int], undo_skipped: dict[str, int], errors: list[dict[str, Any]],
               samples: list[dict[str, str]]) -> None:
        """Add what another :class:`ChunkStore` kept writing the chunks after this one's (a
        writer process's, :mod:`~smsgate.campaigns.writer_process`)."""
        for tally, n in undo_counts.items():
            self.undo_counts[tally] = self.undo_counts.get(tally, 0) + n
        for reason, n in undo_skipped.items():
            self.undo_skipped[reason] = self.undo_skipped.get(reason, 0) + n
        self.errors += errors[: max(0, self.max_errors - len(self.errors))]
        self.samples += samples[: max(0, self.max_samples - len(self.samples))]

    @property
    def full(self) -> bool:
        """Whether the errors and samples kept are complete (later rows' texts and numbers as
        given are no longer read)."""
        return len(self.errors) >= self.max_errors and len(self.samples) >= self.max_samples

    def _opt_out(self, rows: list[RecipientRow], tallies: list[Tally | None], where: list[str | None],
                 checked: list[int]) -> None:
        """Step 5: numbers among the chunk's pending and ``invalid_text`` rows (``checked``) opted
        out of every sender or of their sender become skipped ``opted_out`` (one store query)."""
        if not checked:
            return
        found = self.store.optout_scopes(self.tenant, [rows[i].phone for i in checked])
        if not found:
            return
        scopes, holds = self.scopes, self.rule.holds
        undo_counts, undo_skipped = self.undo_counts, self.undo_skipped
        locate = self.locate
        for i in checked:
            r = rows[i]
            # opted out of every sender, or of the one its provider sends from
            if r.phone not in found or not holds(found[r.phone], scopes[r.provider]):
                continue
            tally = tallies[i]
            if tally is not None:
                undo_counts[tally] = undo_counts.get(tally, 0) + 1
            else:
                undo_skipped["invalid_text"] = undo_skipped.get("invalid_text", 0) + 1
            location = where[i]
            if location is None:
                location = locate(r.line or 0)
            undo_skipped["opted_out"] = undo_skipped.get("opted_out", 0) - 1
            rows[i] = RecipientRow(r.seq, r.phone, _SKIPPED, r.fields, "opted_out", f"{location}: {r.phone} opted out",
                                   None, None, None, None, r.line, r.phone)
            tallies[i] = None
