using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Configuration;

namespace PatroniYarp.Configuration;

/// <summary>
/// The options as JSON under their configuration key names (which is also valid YAML for patroni.yaml). It prints the
/// effective configuration and compares two bindings by content: the records hold lists and dictionaries, whose
/// equality is by reference.
/// </summary>
internal static class ProxyOptionsJson
{
    private static readonly JsonSerializerOptions SerializerOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { UseConfigurationKeyNames } },
    };

    public static string Serialize(ProxyOptions options) => JsonSerializer.Serialize(options, SerializerOptions);

    // Only bound properties, named as in the configuration; derived ones (ClusterUpdatePeriod, …) are left out.
    private static void UseConfigurationKeyNames(JsonTypeInfo type)
    {
        if (type.Kind != JsonTypeInfoKind.Object)
        {
            return;
        }
        for (var i = type.Properties.Count - 1; i >= 0; i--)
        {
            var property = type.Properties[i];
            if ((property.AttributeProvider as MemberInfo)?.GetCustomAttribute<ConfigurationKeyNameAttribute>() is { } key)
            {
                property.Name = key.Name;
            }
            else
            {
                type.Properties.RemoveAt(i);
            }
        }
    }
}
