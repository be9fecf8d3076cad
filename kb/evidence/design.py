"""Study design of a work: PubMed publication types and MeSH first, then title / abstract rules.

Pure functions, no I/O.

>>> classify_design("Stem cells in cerebral palsy", publication_types=["Journal Article",
...                 "Randomized Controlled Trial"])
('rct', 'pubtype')
>>> classify_design("Cord blood for cerebral palsy: individual participant data meta-analysis")
('meta-analysis', 'rule')
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from .screen import Screen

__all__ = ["DESIGNS", "TRIAL_DESIGNS", "PRIMARY_DESIGNS", "SYNTHESIS_DESIGNS", "WEB_TYPES",
           "classify_design", "design_from_publication_types", "design_from_text"]

DESIGNS = ("rct", "controlled-trial", "open-label-trial", "pooled-analysis", "meta-analysis",
           "systematic-review", "review", "case-report", "case-series", "cohort", "preclinical",
           "protocol", "web-article", "other")
#: designs whose works report a trial of their own.
TRIAL_DESIGNS = ("rct", "controlled-trial", "open-label-trial", "protocol")
#: designs of primary clinical studies (a trial, or treated patients described).
PRIMARY_DESIGNS = TRIAL_DESIGNS + ("case-series", "case-report", "cohort")
#: designs that stand on other studies' participants or findings.
SYNTHESIS_DESIGNS = ("pooled-analysis", "meta-analysis", "systematic-review", "review")
#: work types that are web pages (design ``web-article`` when nothing else says otherwise).
WEB_TYPES = ("web-article", "webpage", "post", "blog-post")

# PubMed publication type -> design, strongest first.
_PUBTYPES: list[tuple[str, str]] = [
    ("Retraction of Publication", "other"),
    ("Meta-Analysis", "meta-analysis"),
    ("Systematic Review", "systematic-review"),
    ("Clinical Trial Protocol", "protocol"),
    ("Randomized Controlled Trial", "rct"),
    ("Controlled Clinical Trial", "controlled-trial"),
    ("Case Reports", "case-report"),
    ("Review", "review"),
    ("Observational Study", "cohort"),
]
_PUBTYPES_LOWER = [(name.lower(), design) for name, design in _PUBTYPES]
_TRIAL_PUBTYPE = re.compile(r"^Clinical Trial(?:, Phase [IV/]+)?$|^Clinical Study$", re.I)
_ANIMAL_MESH = {"rats", "mice", "rats, sprague-dawley", "rats, wistar", "disease models, animal",
                "swine", "sheep", "rabbits", "mice, inbred c57bl"}
_COHORT_MESH = {"cohort studies", "retrospective studies", "prospective studies",
                "longitudinal studies", "follow-up studies"}

# (design, pattern) tried in order on the title.
_TEXT_RULES: list[tuple[str, str]] = [
    ("review", r"^(?:progress|advances|recent advances|an update) (?:in|on)\b|state of the art"),
    ("pooled-analysis", r"pooled analys[ie]s|pooled data|individual (?:participant|patient) data"
                        r"(?! meta)|combined analysis of (?:two|three|\d+) "
                        r"(?:randomi[sz]ed )?trials"),
    ("meta-analysis", r"meta-?analys[ie]s|meta-?regression"),
    ("systematic-review", r"systematic(?:al)? review|scoping review|systemic review"),
    ("protocol", r"study protocol|trial protocol|protocol (?:and|for) (?:a|the)|: protocol\b|"
                 r"design and rationale|protocol and rationale"),
    ("rct", r"randomi[sz]ed(?:,)?(?: [\w-]+){0,4} (?:controlled |clinical |placebo[- ]controlled )?"
            r"(?:trial|study)|randomi[sz]ed,? (?:double|single|triple)[- ]blind|"
            r"(?:placebo|sham)[- ]controlled (?:trial|study|crossover)|"
            r"factorial randomi[sz]ed|randomi[sz]ed (?:cross-?over|phase)"),
    ("case-series", r"case series|report of \d+ cases|\b\w+ cases of|retrospective (?:study|"
                    r"analysis|review) of \d+"),
    ("case-report", r"case report|a case of\b|: a case\b(?! series)|one case of|"
                    r"a (?:child|boy|girl|patient) "
                    r"with|individual treatment"),
    ("preclinical", r"\b(?:rats?|mice|mouse|murine|rodents?|piglets?|lambs?|rabbits?)\b|"
                    r"animal models?|in vitro|neonatal hypoxic[- ]ischemic (?:rat|mouse)"),
    ("controlled-trial", r"non-?randomi[sz]ed|\bcontrolled (?:clinical )?(?:trial|study)|"
                         r"case[- ]control(?:led)? study|compared with (?:a )?control group"),
    ("cohort", r"retrospective (?:study|analysis|cohort)|registry[- ]based|prevalence of"),
    ("open-label-trial", r"open[- ]label|single[- ](?:arm|group)|uncontrolled|phase (?:i|1) "
                         r"(?:trial|study)|pilot (?:trial|study)|"
                         r"(?:safety|feasibility)(?: and (?:tolerability|feasibility|safety))? "
                         r"(?:trial|study|of)\b|\bis safe\b"),
    ("cohort", r"\bcohort\b|retrospective (?:study|analysis)|prospective (?:study|observational)|"
               r"registry[- ]based|population[- ]based|prevalence|surveillance|"
               r"follow-?up study|longitudinal study"),
    ("review", r"\breview\b|state of the art|an update\b|current (?:status|proceedings|concepts)|"
               r"progress in\b|perspectives?\b|advances in\b|overview"),
]
_TEXT_RES = [(design, re.compile(pattern, re.I)) for design, pattern in _TEXT_RULES]
# An abstract's background mentions other studies ("randomized trials have shown", "in animal
# models"), so on abstracts only wording about this study counts.
_ABSTRACT_RULES: list[tuple[str, str]] = [
    ("pooled-analysis", r"pooled analys[ie]s of|we pooled|individual (?:participant|patient) "
                        r"data from"),
    ("meta-analysis", r"meta-?analys[ie]s (?:was|were) (?:performed|conducted)|"
                      r"this meta-?analysis|we (?:performed|conducted) a meta-?analysis"),
    ("systematic-review", r"(?:this|a|we (?:performed|conducted) a) systematic review|"
                          r"we systematically searched|PRISMA"),
    ("protocol", r"this (?:study |trial )?protocol|we (?:describe|present) the protocol|"
                 r"will be randomi[sz]ed|will be (?:enrolled|recruited)"),
    ("rct", r"\b(?:were|was) randomi[sz]ed|randomly (?:assigned|allocated|divided)|"
            r"(?:this|a) randomi[sz]ed(?: [\w-]+){0,4} (?:trial|study)"),
    ("controlled-trial", r"non-?randomi[sz]ed (?:controlled )?(?:trial|study)|"
                         r"(?:this|a) controlled (?:clinical )?(?:trial|study)"),
    ("open-label-trial", r"(?:an|this) open[- ]label|single[- ]arm|phase (?:i|1) (?:trial|study)"),
    ("case-series", r"\bcase series|we (?:report|describe|present) \d+ (?:patients|children|cases)"),
    ("case-report", r"we (?:report|describe|present) (?:a|the case of|one)\b|this case report"),
    ("cohort", r"retrospective(?:ly)? (?:cohort|study|analysis|review of)|prospective cohort|"
               r"(?:this|a) cohort study"),
]
_ABSTRACT_RES = [(design, re.compile(pattern, re.I)) for design, pattern in _ABSTRACT_RULES]


@cache
def _screens() -> tuple[Screen, Screen]:
    """One automaton per rule list: the rules a title (an abstract) cannot match are skipped."""
    return (Screen([p for _, p in _TEXT_RULES]), Screen([p for _, p in _ABSTRACT_RULES]))


def design_from_publication_types(publication_types: Iterable[str],
                                  mesh: Iterable[str] = ()) -> str | None:
    """The design PubMed's publication types (and animal / cohort MeSH) state, or None.

    A bare "Clinical Trial" type is not enough to tell randomised from single-arm trials and
    returns None (the text rules decide); "Retracted Publication" says nothing of design.

    >>> design_from_publication_types(["Journal Article", "Review", "Systematic Review"])
    'systematic-review'
    >>> design_from_publication_types(["Journal Article"], ["Animals", "Rats"])
    'preclinical'
    """
    types = {t.strip().lower() for t in publication_types}
    for name, design in _PUBTYPES_LOWER:
        if name in types:
            return design
    terms = {m.strip().lower() for m in mesh}
    if not terms:
        return None
    if terms & _ANIMAL_MESH or ("animals" in terms and "humans" not in terms):
        return "preclinical"
    if terms & _COHORT_MESH and not any(_TRIAL_PUBTYPE.match(t) for t in publication_types):
        return "cohort"
    return None


def design_from_text(title: str | None, abstract: str | None = None) -> str | None:
    """The design a title (then an abstract) words, or None.

    >>> design_from_text("Outcomes of autologous bone marrow mononuclear cells for cerebral "
    ...                  "palsy: an open label uncontrolled clinical trial")
    'open-label-trial'
    >>> design_from_text("Forty cases of cerebral palsy treated with human neural stem cells")
    'case-series'
    """
    for text, rules, screen in zip((title, abstract), (_TEXT_RES, _ABSTRACT_RES), _screens()):
        if not text:
            continue
        candidates = screen.candidates(text)
        for index, (design, pattern) in enumerate(rules):
            if index in candidates and pattern.search(text):
                return design
    return None


def classify_design(title: str | None, abstract: str | None = None,
                    publication_types: Iterable[str] = (), mesh: Iterable[str] = (),
                    work_type: str | None = None) -> tuple[str, str] | None:
    """``(design, source)`` for one work: ``pubtype`` when PubMed's types (or MeSH) decide,
    ``rule`` when the text does; None when there is no text to judge (a stub)."""
    publication_types = list(publication_types)
    design = design_from_publication_types(publication_types, mesh)
    if design is not None:
        return design, "pubtype"
    trial_type = any(_TRIAL_PUBTYPE.match(t) for t in publication_types)
    text_design = design_from_text(title, abstract)
    if trial_type:
        if text_design in ("rct", "controlled-trial", "open-label-trial", "protocol"):
            return text_design, "pubtype"
        return "open-label-trial", "pubtype"
    if work_type in WEB_TYPES:
        return "web-article", "rule"
    if text_design is not None:
        return text_design, "rule"
    if title or abstract:
        return "other", "rule"
    return None
