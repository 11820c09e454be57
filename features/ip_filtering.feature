@role:server
Feature: Only registered source addresses reach the API
  The e-Evidence access solution lets API connections in only from pre-registered source
  addresses or ranges (EB-IP-1), and a changed range gets access only once it is registered
  (EB-IP-2). Clients take their source address from 127.0.0.0/8, which Linux routes to the
  loopback interface, so "the same valid certificate from a registered and from an
  unregistered address" is a real test on one machine. A refusal may be a reset at accept,
  a TLS-level refusal or an HTTP 403, and never comes with protected data.

  @req:EB-IP-1
  Scenario: a valid client from a registered address is let in
    Given a client presenting the certificate "client-5560000001"
    And the client connects from a registered address
    When the client requests its own organisation's data
    Then the request succeeds with the organisation's data

  @req:EB-IP-1
  Scenario: the same valid client from an unregistered address is refused
    Given a client presenting the certificate "client-5560000001"
    And the client connects from an unregistered address
    When the client requests its own organisation's data
    Then the request is refused without protected data

  @req:EB-IP-1
  Scenario Outline: the <edge> address of each registered range is let in
    Given a client presenting the certificate "client-5560000001"
    And the client connects from the <edge> address of each registered range
    When the client requests its own organisation's data
    Then the request succeeds with the organisation's data

    Examples:
      | edge  |
      | first |
      | last  |

  @req:EB-IP-1
  Scenario Outline: the address just <side> each registered range is refused
    Given a client presenting the certificate "client-5560000001"
    And the client connects from the address just <side> each registered range
    When the client requests its own organisation's data
    Then the request is refused without protected data

    Examples:
      | side  |
      | below |
      | above |

  @req:EB-IP-1
  Scenario Outline: a forged <header> header does not let an unregistered client in
    Given a client presenting the certificate "client-5560000001"
    And the client connects from an unregistered address
    And the client sends a forged <header> header naming a registered address
    When the client requests its own organisation's data
    Then the request is refused without protected data

    Examples:
      | header          |
      | X-Forwarded-For |
      | X-Real-IP       |
      | Forwarded       |

  @req:EB-IP-1
  Scenario Outline: a PROXY protocol <version> header from an untrusted client does not change its address
    Given a client presenting the certificate "client-5560000001"
    And the client connects from an unregistered address
    And the client sends a PROXY protocol <version> header naming a registered address
    When the client requests its own organisation's data
    Then the request is refused without protected data

    Examples:
      | version |
      | v1      |
      | v2      |

  @req:EB-IP-1
  Scenario: an IPv6 client outside the registered ranges is refused
    Given a client presenting the certificate "client-5560000001"
    And the client connects over IPv6
    When the client requests its own organisation's data
    Then the request is refused without protected data

  @req:EB-IP-1
  Scenario: an unregistered IPv4 client seen as v4-mapped IPv6 by a dual-stack listener is refused
    Given a client presenting the certificate "client-5560000001"
    And the client connects to the IUT's dual-stack listener
    And the client connects from an unregistered address
    When the client requests its own organisation's data
    Then the request is refused without protected data

  @req:EB-IP-1
  Scenario: a registered IPv4 client seen as v4-mapped IPv6 by a dual-stack listener is let in
    Given a client presenting the certificate "client-5560000001"
    And the client connects to the IUT's dual-stack listener
    And the client connects from a registered address
    When the client requests its own organisation's data
    Then the request succeeds with the organisation's data

  @req:EB-IP-2 @serial
  Scenario: an address is refused until the IUT's list includes it, and again after it is removed
    Given a client presenting the certificate "client-5560000001"
    And the client connects from a second unregistered address
    When the client requests its own organisation's data
    Then the request is refused without protected data
    When the client's address is added to the IUT's registered ranges
    Then the request succeeds with the organisation's data
    When the client's address is removed from the IUT's registered ranges
    Then the request is refused without protected data
