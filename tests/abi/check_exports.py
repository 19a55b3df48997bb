#!/usr/bin/env python3
"""The public boundary: libmdht.so exports exactly what include/mdht.h
declares, nothing more (an internal function would become ABI the day
someone links against it) and nothing less (a declared function that is
not exported links statically but not against the shared library).

    check_exports.py include/mdht.h build/libmdht.so

The declarations are read from the header itself, so that adding a
function to mdht.h without MDHT_EXTERN, or making a core function
non-static without keeping it hidden, fails here. Exits 1 with the names
that differ.
"""
import re
import subprocess
import sys


def strip_header(text):
    """The header without comments and preprocessor lines (macros such as
    MDHT_ERRORS(X) expand to no function declaration)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    out, cont = [], False
    for line in text.split("\n"):
        if cont or line.lstrip().startswith("#"):
            cont = line.rstrip().endswith("\\")
            continue
        out.append(line)
    return "\n".join(out)


def declared(header_text):
    """Function names declared in the header -> whether the declaration
    carries MDHT_EXTERN. A name followed by '(' is a function, unless it
    is a function pointer type `(*name)(`."""
    code = strip_header(header_text)
    found = {}
    for m in re.finditer(r"(\(\s*\*\s*)?\b(mdht_\w+)\s*\(", code):
        if m.group(1):
            continue  # typedef void (*mdht_event_cb)(...)
        start = max(code.rfind(";", 0, m.start()), code.rfind("}", 0, m.start()),
                    code.rfind("{", 0, m.start()))
        found[m.group(2)] = "MDHT_EXTERN" in code[start + 1:m.start()]
    return found


def exported(lib):
    """Defined dynamic symbols of the shared library."""
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            names.add(parts[-1].split("@")[0])
    return names


def compare(decl, exp):
    """Problems found, one line each; empty when the boundary holds."""
    problems = []
    for name in sorted(n for n, ext in decl.items() if not ext):
        problems.append("declared without MDHT_EXTERN: %s" % name)
    for name in sorted(set(decl) - exp):
        problems.append("declared in mdht.h but not exported: %s" % name)
    for name in sorted(exp - set(decl)):
        problems.append("exported but not declared in mdht.h (leak): %s" % name)
    return problems


def self_check():
    """The comparison itself catches each kind of difference, so that a
    broken parser cannot pass by finding nothing to compare."""
    hdr = """
    /* mdht_in_comment(int) */
    #define MDHT_X(a) mdht_in_macro(a)
    typedef void (*mdht_cb)(int);
    MDHT_EXTERN int mdht_a(int x);
    MDHT_EXTERN const char *mdht_b(void);
    int mdht_c(void);
    """
    d = declared(hdr)
    assert d == {"mdht_a": True, "mdht_b": True, "mdht_c": False}, d
    assert compare({"mdht_a": True}, {"mdht_a"}) == []
    assert compare({"mdht_a": True}, {"mdht_a", "mdht_leak"})
    assert compare({"mdht_a": True, "mdht_b": True}, {"mdht_a"})
    assert compare({"mdht_c": False}, {"mdht_c"})


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    self_check()
    with open(sys.argv[1]) as f:
        decl = declared(f.read())
    exp = exported(sys.argv[2])
    # A header that yields a handful of names has not been parsed.
    if len(decl) < 20:
        print("FAIL: only %d declarations found in %s" % (len(decl), sys.argv[1]))
        return 1
    problems = compare(decl, exp)
    for p in problems:
        print("FAIL: " + p)
    if problems:
        return 1
    print("figure: %d functions declared in mdht.h, %d symbols exported, "
          "identical" % (len(decl), len(exp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
