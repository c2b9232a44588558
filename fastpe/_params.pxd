# cython: language_level=3
# The front doors' view of the parameter declarations (fastpe/_validation/params.py):
# each rule is filled from its declaration at import, so the bounds a front
# door recognises are the ones the Python check enforces, written once.


cdef struct IntRule:
    long long minimum
    bint even
    bint none_allowed


cdef inline IntRule int_rule(object declaration):
    """The C view of an Integer declaration."""
    cdef IntRule rule
    rule.minimum = declaration.minimum
    rule.even = declaration.even
    rule.none_allowed = declaration.none_allowed
    return rule


cdef inline bint accepts_int(object value, const IntRule *rule):
    """value is what the rule's check returns as it is: None where allowed,
    or an exact Python int within the rule. Anything else (another integer
    type, a value the check refuses) goes to the check."""
    if value is None:
        return rule.none_allowed
    if type(value) is not int or value < rule.minimum:
        return False
    return not (rule.even and value % 2)
