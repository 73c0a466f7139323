"""validate_config / validate_rpc_input: accepted data and RFC-conformant errors."""

from __future__ import annotations

import copy

import pytest
from lxml import etree

from agent.errors import SchemaError
from agent.schema.convert import xpath_literal
from agent.schema.model import SchemaModel
from agent.schema.validate import validate_config, validate_rpc_input

from .helpers import CRYPTO, SYS, TEST, clark, data

TP_PATH = "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='myca']"


def seed(period: str = "2", count: str = "25", hostname: str = "myhost", enrollment: str | None = None) -> str:
    """The seed's configuration (hostname, domain name, trustpoint myca)."""
    if enrollment is None:
        enrollment = f"<url>http://xyz-ultra5</url><retry><count>{count}</count><period>{period}</period></retry>"
    return (
        f'<hostname xmlns="{SYS}">{hostname}</hostname>'
        f'<domain xmlns="{SYS}"><name>mydomain.com</name></domain>'
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint>'
        f"<name>myca</name><enrollment>{enrollment}</enrollment><rsakeypair>mykey</rsakeypair>"
        "</trustpoint></ca></crypto>"
    )


def reject(body: str, model: SchemaModel | None = None) -> SchemaError:
    with pytest.raises(SchemaError) as err:
        validate_config(data(body), model)
    return err.value


# --------------------------------------------------------------- accepted


def test_seed_config_is_valid() -> None:
    validate_config(data(seed()))


def test_empty_config_is_valid() -> None:
    validate_config(data(""))


def test_config_element_and_comments() -> None:
    el = etree.fromstring(
        '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><!-- hi -->'
        f'<hostname xmlns="{SYS}">r1</hostname></config>'
    )
    validate_config(el)


def test_terminal_enrollment_is_valid() -> None:
    validate_config(data(seed(enrollment="<terminal/>")))


def test_boundaries_are_valid() -> None:
    validate_config(data(seed(period="1", count="1")))
    validate_config(data(seed(period="60", count="100")))


# -------------------------------------------------------------- rejected


@pytest.mark.parametrize(
    ("period", "count", "leaf", "message"),
    [
        # the YANG range's error-message
        ("0", "25", "period", "The retry period is 1 to 60 minutes."),
        ("61", "25", "period", "The retry period is 1 to 60 minutes."),
        ("2", "101", "count", "The retry count is 1 to 100."),
        ("2", "0", "count", "The retry count is 1 to 100."),
    ],
)
def test_out_of_range(period: str, count: str, leaf: str, message: str) -> None:
    err = reject(seed(period=period, count=count))
    assert err.error_tag == "invalid-value"
    assert err.path == f"{TP_PATH}/crypto:enrollment/crypto:retry/crypto:{leaf}"
    assert err.message == message
    assert err.info == {"bad-element": leaf}


@pytest.mark.parametrize("bad", ["x", "1.5", "", "-1", "256", "1_0"])
def test_not_an_integer(bad: str) -> None:
    err = reject(seed(period=bad))
    assert err.error_tag == "invalid-value"
    assert err.path == f"{TP_PATH}/crypto:enrollment/crypto:retry/crypto:period"
    assert "period" in err.message


@pytest.mark.parametrize("hostname", ["bad_host", "-host", "host-", "a b", ""])
def test_bad_hostname(hostname: str) -> None:
    err = reject(seed(hostname=hostname))
    assert err.error_tag == "invalid-value"
    assert err.path == "/sys:hostname"
    assert "hostname" in err.message


def test_bad_hostname_message_is_the_yang_error_message() -> None:
    err = reject(seed(hostname="bad_host"))
    assert err.message == (
        "A hostname has only letters, digits and hyphens, and starts and ends with a letter or digit (e.g. router20)."
    )
    err = reject(seed(hostname="a" * 64))
    assert err.message == "A hostname is 1 to 63 characters long."


def test_bad_domain_name() -> None:
    err = reject(f'<domain xmlns="{SYS}"><name>bad..name</name></domain>')
    assert (err.error_tag, err.path) == ("invalid-value", "/sys:domain/sys:name")
    # inet:domain-name's own pattern has no error-message; ours, repeating it, has (and wins)
    assert err.message.startswith("A domain name is labels of letters, digits, hyphens and underscores joined by dots")


def test_bad_url_scheme() -> None:
    err = reject(seed(enrollment="<url>ftp://ca.example.com</url>"))
    assert (err.error_tag, err.path) == ("invalid-value", f"{TP_PATH}/crypto:enrollment/crypto:url")


@pytest.mark.parametrize("subject", ["CN=r1\nO=evil", "CN=r1\r", "CN=a\tb", "CN=a\x7fb", "CN=a\x85b", "CN=a\u2028b"])
def test_control_characters_in_subject_name(subject: str) -> None:
    config = data(seed())
    tp = config.find(f".//{{{CRYPTO}}}trustpoint")
    assert tp is not None
    etree.SubElement(tp, f"{{{CRYPTO}}}subject-name").text = subject
    with pytest.raises(SchemaError) as caught:
        validate_config(config)
    err = caught.value
    assert (err.error_tag, err.path) == ("invalid-value", f"{TP_PATH}/crypto:subject-name")
    assert err.error_app_tag == "invalid-subject-name"
    assert err.message == "The subject name must not contain control characters (newline, tab...)."


def test_printable_subject_name_is_valid() -> None:
    config = data(seed())
    tp = config.find(f".//{{{CRYPTO}}}trustpoint")
    assert tp is not None
    etree.SubElement(tp, f"{{{CRYPTO}}}subject-name").text = "CN=r\u00e9seau 1,O=Acme\\, Inc.,C=US"
    validate_config(config)


def test_unknown_element() -> None:
    err = reject(seed(enrollment="<url>http://ca</url><colour>red</colour>"))
    assert err.error_tag == "unknown-element"
    assert err.info == {"bad-element": "colour"}
    assert err.path == f"{TP_PATH}/crypto:enrollment"


def test_unknown_top_level_namespace() -> None:
    err = reject('<thing xmlns="urn:example:unknown"/>')
    assert err.error_tag == "unknown-element"
    assert "urn:example:unknown" in err.message
    assert err.path == "/"


def test_element_without_namespace() -> None:
    el = etree.fromstring("<data><hostname>r1</hostname></data>")
    with pytest.raises(SchemaError) as err:
        validate_config(el)
    assert err.value.error_tag == "unknown-element"


def test_both_cases_of_a_choice() -> None:
    err = reject(seed(enrollment="<url>http://ca</url><terminal/>"))
    assert err.error_tag == "invalid-value"
    assert err.path == f"{TP_PATH}/crypto:enrollment/crypto:terminal"
    assert "choice" in err.message


def test_empty_leaf_with_a_value() -> None:
    err = reject(seed(enrollment="<terminal>yes</terminal>"))
    assert (err.error_tag, err.path) == ("invalid-value", f"{TP_PATH}/crypto:enrollment/crypto:terminal")


def test_list_entry_without_key() -> None:
    err = reject(f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><rsakeypair>k</rsakeypair></trustpoint></ca></crypto>')
    assert err.error_tag == "missing-element"
    assert err.info == {"bad-element": "name"}
    assert err.path == "/crypto:crypto/crypto:ca/crypto:trustpoint"


def test_duplicate_list_entry() -> None:
    tp = "<trustpoint><name>myca</name></trustpoint>"
    err = reject(f'<crypto xmlns="{CRYPTO}"><ca>{tp}{tp}</ca></crypto>')
    assert (err.error_tag, err.path) == ("invalid-value", TP_PATH)


def test_duplicate_leaf() -> None:
    err = reject(f'<hostname xmlns="{SYS}">a</hostname><hostname xmlns="{SYS}">b</hostname>')
    assert (err.error_tag, err.path) == ("invalid-value", "/sys:hostname")


def test_state_data_in_config() -> None:
    err = reject('<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"/>')
    assert err.error_tag == "invalid-value"
    assert err.path == "/ncm:netconf-state"
    assert "config false" in err.message


def test_key_with_quote_in_path() -> None:
    err = reject(f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>it\'s</name></trustpoint></ca></crypto>')
    assert err.error_tag == "invalid-value"
    assert err.path == '/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name="it\'s"]/crypto:name'


def test_xpath_literal() -> None:
    assert xpath_literal("a") == "'a'"
    assert xpath_literal("it's") == '"it\'s"'
    mixed = 'it\'s "x"'
    assert xpath_literal(mixed) == "concat('it', \"'\", 's \"x\"')"


# ------------------------------------------- rules of the test-only module


def things(body: str) -> str:
    return (
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>myca</name></trustpoint></ca></crypto>'
        f'<things xmlns="{TEST}" xmlns:t="{TEST}">{body}</things>'
    )


OK = "<need>x</need><a>1</a>"


def test_test_module_accepts_valid_data(test_model: SchemaModel) -> None:
    validate_config(
        data(
            things(
                OK + "<kind>t:small</kind><level>high</level><ratio>0.5</ratio><tag>a</tag><tag>b</tag>"
                "<item><id>1</id><label>x</label><trustpoint>myca</trustpoint><low>1</low><high>2</high>"
                "<odd>3</odd><extra>e</extra></item><item><id>2</id><label>y</label></item>"
            )
        ),
        test_model,
    )


def test_mandatory_leaf(test_model: SchemaModel) -> None:
    err = reject(things("<a>1</a>"), test_model)
    assert (err.error_tag, err.error_app_tag) == ("missing-element", None)
    assert err.path == "/t:things/t:need"
    assert err.info == {"bad-element": "need"}


def test_mandatory_choice(test_model: SchemaModel) -> None:
    err = reject(things("<need>x</need>"), test_model)
    assert (err.error_tag, err.error_app_tag) == ("data-missing", "missing-choice")
    assert err.path == "/t:things"
    assert err.info == {"missing-choice": "how"}


def test_choice_case_container(test_model: SchemaModel) -> None:
    validate_config(data(things("<need>x</need><b><deep>d</deep></b>")), test_model)
    err = reject(things("<need>x</need><b/><a>1</a>"), test_model)
    assert (err.error_tag, err.path) == ("invalid-value", "/t:things/t:a")


def test_must_with_error_message(test_model: SchemaModel) -> None:
    err = reject(things(OK + "<item><id>7</id><low>5</low><high>3</high></item>"), test_model)
    assert (err.error_tag, err.error_app_tag) == ("operation-failed", "must-violation")
    assert err.path == "/t:things/t:item[t:id='7']/t:high"
    assert err.message == "high must not be below low"


def test_must_with_error_app_tag(test_model: SchemaModel) -> None:
    err = reject(things(OK + "<item><id>7</id><odd>4</odd></item>"), test_model)
    assert (err.error_tag, err.error_app_tag) == ("operation-failed", "not-odd")
    assert err.path == "/t:things/t:item[t:id='7']/t:odd"
    assert "odd" in err.message


def test_when_false(test_model: SchemaModel) -> None:
    err = reject(things(OK + "<item><id>1</id><label>y</label><extra>e</extra></item>"), test_model)
    assert err.error_tag == "unknown-element"
    assert err.path == "/t:things/t:item[t:id='1']/t:extra"


def test_leafref_target_missing(test_model: SchemaModel) -> None:
    err = reject(things(OK + "<item><id>1</id><trustpoint>nope</trustpoint></item>"), test_model)
    assert (err.error_tag, err.error_app_tag) == ("data-missing", "instance-required")
    assert err.path == "/t:things/t:item[t:id='1']/t:trustpoint"
    assert "'nope'" in err.message


def test_unique(test_model: SchemaModel) -> None:
    err = reject(
        things(OK + "<item><id>1</id><label>l</label></item><item><id>2</id><label>l</label></item>"), test_model
    )
    assert (err.error_tag, err.error_app_tag) == ("operation-failed", "data-not-unique")
    assert err.path == "/t:things/t:item[t:id='2']"
    assert err.info == {"non-unique": "/t:things/t:item[t:id='2']/t:label"}


def test_max_elements(test_model: SchemaModel) -> None:
    err = reject(things(OK + "<tag>a</tag><tag>b</tag><tag>c</tag>"), test_model)
    assert (err.error_tag, err.error_app_tag) == ("operation-failed", "too-many-elements")
    assert err.path == "/t:things/t:tag"


def test_duplicate_leaf_list_value(test_model: SchemaModel) -> None:
    err = reject(things(OK + "<tag>a</tag><tag>a</tag>"), test_model)
    assert (err.error_tag, err.path) == ("invalid-value", "/t:things/t:tag[.='a']")


@pytest.mark.parametrize(
    ("leaf", "value", "fragment"),
    [
        ("kind", "t:unrelated", "not derived from"),
        ("kind", "zz:small", "identity"),
        ("level", "medium", "not one of low, high"),
        ("ratio", "1.5", "out of range"),
        ("ratio", "0.125", "fraction digits"),
    ],
)
def test_other_types(test_model: SchemaModel, leaf: str, value: str, fragment: str) -> None:
    err = reject(things(OK + f"<{leaf}>{value}</{leaf}>"), test_model)
    assert (err.error_tag, err.path) == ("invalid-value", f"/t:things/t:{leaf}")
    assert fragment in err.message


def test_identityref_with_own_prefix_declaration(test_model: SchemaModel) -> None:
    body = OK + '<kind xmlns:other="urn:ca-agent:yang:test">other:small</kind>'
    validate_config(data(things(body)), test_model)


def test_a_checked_text_counts_for_its_type_only(test_model: SchemaModel) -> None:
    """Checks of a value's text are remembered per type: a bulk edit repeats most values."""
    for _ in range(2):  # the second time from what was remembered: the same answers
        validate_config(data(things(OK + "<ratio>0.5</ratio>")), test_model)
        validate_config(data(things(OK + "<item><id>1</id><low>5</low></item>")), test_model)
        err = reject(things(OK + "<item><id>1</id><low>0.5</low></item>"), test_model)  # the same text, an int8
        assert (err.error_tag, err.path) == ("invalid-value", "/t:things/t:item[t:id='1']/t:low")
        err = reject(things(OK + "<item><id>1</id><low>500</low></item>"), test_model)
        assert "out of range" in err.message
        err = reject(things(OK + "<ratio>1.5</ratio>"), test_model)
        assert (err.error_tag, err.path) == ("invalid-value", "/t:things/t:ratio")
        assert "out of range" in err.message


def test_an_identityref_is_read_with_the_prefixes_of_its_own_element(test_model: SchemaModel) -> None:
    """The same text names another identity where its prefix is bound elsewhere: never remembered by text."""
    for _ in range(2):
        validate_config(data(things(OK + '<kind xmlns:p="urn:ca-agent:yang:test">p:small</kind>')), test_model)
        err = reject(things(OK + '<kind xmlns:p="urn:example:elsewhere">p:small</kind>'), test_model)
        assert (err.error_tag, err.path) == ("invalid-value", "/t:things/t:kind")


# --------------------------------------------------------------------- RPC


DO_THING = clark(TEST, "do-thing")


def rpc(body: str) -> etree._Element:
    return etree.fromstring(f'<do-thing xmlns="{TEST}">{body}</do-thing>')


def test_rpc_input_valid(test_model: SchemaModel) -> None:
    validate_rpc_input(DO_THING, rpc("<count>3</count><name>abc</name>"), test_model)
    # References into the datastore are left to the service (see the docstring).
    validate_rpc_input(DO_THING, rpc("<count>3</count><trustpoint>nope</trustpoint>"), test_model)


def test_rpc_input_out_of_range(test_model: SchemaModel) -> None:
    with pytest.raises(SchemaError) as err:
        validate_rpc_input(DO_THING, rpc("<count>11</count>"), test_model)
    assert err.value.error_tag == "invalid-value"
    assert err.value.path == "/t:do-thing/t:count"
    assert err.value.message == "value 11 is out of range 1..10 for count"


def test_rpc_input_length(test_model: SchemaModel) -> None:
    with pytest.raises(SchemaError) as err:
        validate_rpc_input(DO_THING, rpc("<count>1</count><name>toolong</name>"), test_model)
    assert (err.value.error_tag, err.value.path) == ("invalid-value", "/t:do-thing/t:name")
    assert "length" in err.value.message


def test_rpc_input_missing_mandatory(test_model: SchemaModel) -> None:
    with pytest.raises(SchemaError) as err:
        validate_rpc_input(DO_THING, rpc("<name>a</name>"), test_model)
    assert (err.value.error_tag, err.value.path) == ("missing-element", "/t:do-thing/t:count")


def test_rpc_input_unknown_parameter(test_model: SchemaModel) -> None:
    with pytest.raises(SchemaError) as err:
        validate_rpc_input(DO_THING, rpc("<count>1</count><result>x</result>"), test_model)
    assert err.value.error_tag == "unknown-element"
    assert err.value.info == {"bad-element": "result"}


def test_unknown_rpc(test_model: SchemaModel) -> None:
    with pytest.raises(SchemaError) as err:
        validate_rpc_input(clark(TEST, "nope"), rpc(""), test_model)
    assert err.value.error_tag == "operation-not-supported"


# ------------------------------------------------------------- performance


def big_config(n: int) -> etree._Element:
    tps = "".join(
        f"<trustpoint><name>tp{i}</name><enrollment><url>http://ca{i}.example.com/cgi-bin/pkiclient.exe</url>"
        f"<retry><count>25</count><period>2</period></retry></enrollment>"
        f"<query-url>ldap://ldap.example.com</query-url><rsakeypair>key{i}</rsakeypair>"
        f"<subject-name>CN=r{i},O=Example</subject-name></trustpoint>"
        for i in range(n)
    )
    return data(
        f'<hostname xmlns="{SYS}">myhost</hostname><domain xmlns="{SYS}"><name>mydomain.com</name></domain>'
        f'<crypto xmlns="{CRYPTO}"><ca>{tps}</ca></crypto>'
    )


def test_thousand_trustpoints_are_valid_and_a_duplicate_among_them_is_not() -> None:
    """Validation takes a big configuration whole (its timing is in bench/micro.py)."""
    config = big_config(1000)
    validate_config(config)  # raises SchemaError on the first violation
    ca = config.find(f".//{{{CRYPTO}}}ca")
    assert ca is not None and len(ca) == 1000
    ca.append(copy.deepcopy(ca[500]))  # tp500 again, last
    with pytest.raises(SchemaError) as err:
        validate_config(config)
    assert err.value.error_tag == "invalid-value"
    assert err.value.path == "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='tp500']"


def test_error_in_the_last_of_many_entries() -> None:
    config = big_config(1000)
    period = config.find(f".//{{{CRYPTO}}}trustpoint[{{{CRYPTO}}}name='tp999']//{{{CRYPTO}}}period")
    assert period is not None
    period.text = "61"
    with pytest.raises(SchemaError) as err:
        validate_config(config)
    assert err.value.path == (
        "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='tp999']/crypto:enrollment/crypto:retry/crypto:period"
    )
