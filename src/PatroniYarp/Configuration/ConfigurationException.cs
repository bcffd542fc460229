namespace PatroniYarp.Configuration;

/// <summary>The configuration cannot be used; the message names the file and the key.</summary>
internal sealed class ConfigurationException(string message, Exception? inner = null) : Exception(message, inner);
