"""The Chomsky-hierarchy suite: every sampler against its plain-Python definition, the paper's
worked examples, the tape layout, and one small run that learns a regular task."""


def _tokens(text):
    return [int(c) for c in text]
