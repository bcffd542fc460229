using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;

namespace PatroniYarp.Routing;

/// <summary>
/// ASP.NET data protection's key ring, kept in memory only (see <see cref="RoutingServiceCollectionExtensions"/>):
/// the framework has no public one.
/// </summary>
internal sealed class InMemoryXmlRepository : IXmlRepository
{
    private readonly Lock _lock = new();
    private readonly List<XElement> _elements = [];

    public IReadOnlyCollection<XElement> GetAllElements()
    {
        lock (_lock)
        {
            return [.. _elements];
        }
    }

    public void StoreElement(XElement element, string friendlyName)
    {
        lock (_lock)
        {
            _elements.Add(element);
        }
    }
}
